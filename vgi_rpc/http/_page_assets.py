"""The service page's inline stylesheet and script (no external assets: it works offline).

The script only reads the page's own markup (forms carry their call URL in
``data-url``) and writes results with ``textContent``, so nothing a service
or a call returns is ever parsed as HTML.
"""

from __future__ import annotations

STYLE = """
:root { color-scheme: light dark; --fg:#1d2330; --muted:#5d6677; --bg:#f7f8fa; --card:#fff;
  --line:#dde1e8; --accent:#2456c9; --ok:#17803d; --err:#b42318; --code:#eef1f6; }
@media (prefers-color-scheme: dark) { :root { --fg:#e4e7ee; --muted:#9aa3b5; --bg:#14171d;
  --card:#1c2029; --line:#2f3542; --accent:#7ea6ff; --ok:#4cc27a; --err:#ff7a6b; --code:#252a35; } }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
code, pre, textarea { font-family: ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12.5px; }
header.top { padding:14px 24px; background:var(--card); border-bottom:1px solid var(--line);
  display:flex; flex-wrap:wrap; gap:8px 24px; align-items:center; position:sticky; top:0; z-index:2; }
header.top h1 { margin:0; font-size:19px; }
header.top .sub { margin:0; color:var(--muted); }
header.top .tools { margin-left:auto; display:flex; gap:10px; align-items:center; }
input[type=search], input.authz { padding:6px 9px; border:1px solid var(--line); border-radius:6px;
  background:var(--bg); color:var(--fg); min-width:220px; }
.layout { display:grid; grid-template-columns: 250px 1fr; }
nav.toc { position:sticky; top:64px; align-self:start; max-height:calc(100vh - 64px); overflow:auto;
  padding:14px 10px 30px 18px; border-right:1px solid var(--line); }
nav.toc h2 { font-size:12.5px; color:var(--muted); margin:14px 0 4px; overflow-wrap:anywhere; }
nav.toc h2 a { color:var(--muted); font-weight:700; white-space:normal; }
nav.toc ul { list-style:none; margin:0; padding:0; }
nav.toc a { display:block; padding:1px 6px; border-radius:4px; color:var(--fg); text-decoration:none;
  white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
nav.toc a:hover { background:var(--code); }
main { padding:6px 24px 60px; min-width:0; }
section.protocol > h2 { font-size:18px; margin:22px 0 2px; }
.ver, .badge { font-size:11px; font-weight:600; padding:1px 7px; border-radius:10px;
  background:var(--code); color:var(--muted); vertical-align:middle; margin-left:6px; }
.badge.unary { color:var(--accent); } .badge.producer, .badge.exchange, .badge.stream { color:#a2590a; }
.note { color:var(--muted); margin:2px 0 8px; }
.doc { white-space:pre-wrap; margin:6px 0; }
article.method { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:10px 14px; margin:10px 0; }
article.method h3 { margin:0; font-size:14px; font-weight:600; overflow-wrap:anywhere; }
article.method h3 code { font-size:13px; }
table.fields { border-collapse:collapse; margin:6px 0; width:100%; }
table.fields th, table.fields td { text-align:left; padding:3px 10px 3px 0; border-bottom:1px solid var(--line);
  vertical-align:top; overflow-wrap:anywhere; }
table.fields th { font-size:11px; text-transform:uppercase; color:var(--muted); font-weight:600; }
table.params th { white-space:nowrap; }
table.params td:first-child, table.params td:nth-child(n+3) { white-space:nowrap; width:1%; }
details.shape { margin:2px 0 4px; } details.shape summary { cursor:pointer; color:var(--accent); }
details.shape table.fields { margin:2px 0 2px 12px; width:auto; }
.py { color:var(--muted); }
.kv { margin:4px 0; } .kv b { color:var(--muted); font-weight:600; }
form.call { margin-top:8px; display:grid; grid-template-columns: 1fr; gap:6px; }
form.call textarea { width:100%; padding:6px 8px; border:1px solid var(--line); border-radius:6px;
  background:var(--bg); color:var(--fg); resize:vertical; }
form.call button { justify-self:start; padding:5px 16px; border:0; border-radius:6px; background:var(--accent);
  color:#fff; font-weight:600; cursor:pointer; }
form.call button:disabled { opacity:.6; cursor:default; }
.result:empty { display:none; }
.result { border-left:3px solid var(--line); padding:4px 10px; background:var(--code); border-radius:4px; }
.result[data-state=ok] { border-color:var(--ok); } .result[data-state=error] { border-color:var(--err); }
.result .status { color:var(--muted); font-size:12px; }
.result .error { color:var(--err); font-weight:600; white-space:pre-wrap; }
.result pre { margin:4px 0; white-space:pre-wrap; overflow-wrap:anywhere; }
.result .logs { margin:4px 0; padding-left:18px; }
[hidden] { display:none !important; }
@media (max-width: 800px) { .layout { grid-template-columns: 1fr; } nav.toc { display:none; } }
"""

SCRIPT = """
(() => {
  'use strict';
  const authz = document.getElementById('authz');
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const show = (out, status, ms, data, text) => {
    out.replaceChildren();
    out.append(el('div', 'status', 'HTTP ' + status + ' \\u00b7 ' + ms + ' ms' +
      (data && data.request_id ? ' \\u00b7 request ' + data.request_id : '')));
    if (!data) {
      out.dataset.state = 'error';
      out.append(el('pre', 'value', text));
      return;
    }
    if (Array.isArray(data.logs) && data.logs.length) {
      const list = el('ul', 'logs');
      for (const log of data.logs) {
        const extra = log.extra ? ' ' + JSON.stringify(log.extra) : '';
        list.append(el('li', 'log', log.level + ': ' + log.message + extra));
      }
      out.append(list);
    }
    if (data.error) {
      out.dataset.state = 'error';
      out.append(el('div', 'error', data.error.type + ': ' + data.error.message));
      if (data.error.traceback) {
        const more = el('details');
        more.append(el('summary', '', 'Traceback'), el('pre', '', data.error.traceback));
        out.append(more);
      }
      return;
    }
    out.dataset.state = 'ok';
    out.append(el('pre', 'value', JSON.stringify(data.result, null, 2)));
  };
  for (const form of document.querySelectorAll('form.call')) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const out = form.querySelector('.result');
      const button = form.querySelector('button');
      const headers = {'Content-Type': 'application/json', 'Accept': 'application/json'};
      if (authz && authz.value.trim()) headers['Authorization'] = authz.value.trim();
      button.disabled = true;
      out.dataset.state = 'pending';
      out.textContent = 'Calling\\u2026';
      const started = performance.now();
      try {
        const resp = await fetch(form.dataset.url, {
          method: 'POST', headers, body: form.elements.params.value, credentials: 'same-origin',
        });
        const text = await resp.text();
        let data = null;
        try { data = JSON.parse(text); } catch (_) { data = null; }
        show(out, resp.status, Math.round(performance.now() - started), data, text);
      } catch (err) {
        out.dataset.state = 'error';
        out.textContent = 'The request failed: ' + err;
      } finally {
        button.disabled = false;
      }
    });
  }
  const filter = document.getElementById('filter');
  if (filter) {
    filter.addEventListener('input', () => {
      const words = filter.value.trim().toLowerCase();
      for (const node of document.querySelectorAll('[data-method]')) {
        node.hidden = words !== '' && !node.dataset.method.toLowerCase().includes(words);
      }
    });
  }
})();
"""

__all__ = ["SCRIPT", "STYLE"]
