"""``GET {prefix}/``: an HTML page describing the service, with a call form per unary method.

Everything on the page comes from the server's hosted protocols (what
``vgi_rpc.Reflection.v1`` and ``__describe__`` report, plus docstrings and
defaults) and is HTML-escaped; the page has no external assets and runs
one inline script allowed by a per-response CSP nonce. The forms post JSON
to ``_page_call.PageCall``. Both routes honour ``authenticate``.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import inspect
import json
import secrets
import urllib.parse

import falcon
import pyarrow as pa

from vgi_rpc._arrow_codecs import DataclassCodec, EnumCodec, IpcBytesCodec
from vgi_rpc._arrow_types import Codec, OptionalCodec
from vgi_rpc._methods import ParamInfo, RpcMethodInfo
from vgi_rpc.http._dispatch import HttpDispatcher
from vgi_rpc.http._page_assets import SCRIPT, STYLE
from vgi_rpc.http._page_call import CALL_SEGMENT, PageAccess, PageCall
from vgi_rpc.http._page_json import (
    BASE64_PREFIX,
    dataclass_schema,
    ipc_class,
    ipc_kind,
    ipc_stream,
    readable_type,
    to_json,
)
from vgi_rpc.rpc import RpcServer

FRAMEWORK_PREFIX = "vgi_rpc."


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


@dataclasses.dataclass(frozen=True, slots=True)
class ProtocolView:
    """One protocol as the page shows it.

    Attributes:
        key: What the page's markup names it by: the wire name, or ``""`` for a
            default protocol served to first-generation clients only.
        name: The wire name.
        version: The declared ``protocol_version``.
        doc: The Protocol's docstring.
        methods: Its methods, by name.
        routed: Calls name the protocol (second generation); else they go to the default.
        note: A line under the heading.
    """

    key: str
    name: str
    version: str | None
    doc: str
    methods: dict[str, RpcMethodInfo]
    routed: bool
    note: str


def protocol_views(server: RpcServer) -> list[ProtocolView]:
    """What the page lists: hosted protocols, the first-generation default, then the framework's."""
    hosted = [
        ProtocolView(h.name, h.name, h.version, h.doc, h.methods, True, "")
        for h in server.hosted.values()
    ]
    own = [view for view in hosted if not view.name.startswith(FRAMEWORK_PREFIX)]
    framework = [view for view in hosted if view.name.startswith(FRAMEWORK_PREFIX)]
    default_hosted = any(
        h.protocol is server.protocol and h.implementation is server.implementation
        for h in server.hosted.values()
    )
    if not default_hosted:
        own.append(
            ProtocolView(
                "",
                server.protocol_name,
                server.protocol_version,
                inspect.getdoc(server.protocol) or "",
                server.methods,
                False,
                "Served to first-generation clients (requests that name no protocol).",
            )
        )
    framework = [
        dataclasses.replace(view, note="Framework protocol: how clients discover this server.")
        for view in framework
    ]
    return own + framework


# -- example arguments for the forms ---------------------------------------------------

_EXAMPLES: list[tuple[str, object]] = [
    ("integer", 0),
    ("floating", 0.0),
    ("boolean", False),
    ("decimal", "0"),
    ("date", "2024-01-01"),
    ("time", "00:00:00"),
    ("duration", 0),
]


_EMPTY_IPC: dict[type, bytes] = {
    pa.RecordBatch: ipc_stream(pa.RecordBatch.from_pylist([])),
    pa.Schema: pa.schema([]).serialize().to_pybytes(),
}


def _example(t: pa.DataType) -> object:
    if isinstance(t, pa.DictionaryType):
        return _example(t.value_type)
    if isinstance(t, pa.TimestampType):
        return "2024-01-01T00:00:00" + ("+00:00" if t.tz else "")
    if isinstance(t, pa.FixedSizeBinaryType):
        return "0" * t.byte_width
    for family, value in _EXAMPLES:
        if getattr(pa.types, f"is_{family}")(t):
            return value
    if isinstance(t, pa.ListType | pa.LargeListType | pa.FixedSizeListType | pa.MapType):
        return [] if not isinstance(t, pa.MapType) else {}
    if isinstance(t, pa.StructType):
        return {f.name: None if f.nullable else _example(f.type) for f in t}
    if pa.types.is_null(t):
        return None
    return ""


def example_argument(param: ParamInfo) -> object:
    """A value to prefill the form with: the default, else a placeholder of the right type."""
    if param.has_default:
        try:
            py = None if param.default is None else param.codec.to_arrow(param.default, "default")
            if ipc_class(param.codec) is None:
                return to_json(py, param.field.type)
        except (TypeError, ValueError):
            pass
    if param.field.nullable:
        return None
    return _example_of(param.codec, param.field.type)


def _example_of(codec: Codec, t: pa.DataType) -> object:
    """A placeholder built from the codec where it knows more than the Arrow type (enums)."""
    if isinstance(codec, OptionalCodec):
        return None
    if isinstance(codec, EnumCodec):
        return next(iter(codec.enum_cls.__members__))
    if isinstance(codec, IpcBytesCodec):
        return BASE64_PREFIX + base64.b64encode(_EMPTY_IPC[codec.kind]).decode()
    if isinstance(codec, DataclassCodec):
        fields = dataclass_schema(codec.cls)
        return {
            name: _example_of(c, f.type) for (name, c), f in zip(codec.fields, fields, strict=True)
        }
    return _example(t)


# -- rendering --------------------------------------------------------------------------


def _type_html(t: pa.DataType, codec: Codec) -> str:
    """An Arrow type, with the dataclass, enum or IPC payload it stands for."""
    cls = ipc_class(codec)
    if cls is not None:
        fields = list(dataclass_schema(cls))
        return (
            f"<code>{_e(cls.__name__)}</code> <span class='py'>(a dataclass, as Arrow IPC in "
            f"<code>{_e(readable_type(t))}</code>)</span><details class='shape'><summary>"
            f"{len(fields)} field{'s' if len(fields) != 1 else ''}</summary>"
            f"{_fields_table(fields)}</details>"
        )
    kind = ipc_kind(codec)
    if kind is not None:
        return f"<code>{_e(readable_type(t))}</code> <span class='py'>(Arrow IPC of a {_e(kind.__name__)})</span>"
    inner = codec.inner if isinstance(codec, OptionalCodec) else codec
    if isinstance(inner, EnumCodec):
        members = ", ".join(inner.enum_cls.__members__)
        return (
            f"<code>{_e(readable_type(t))}</code> <span class='py'>enum "
            f"{_e(inner.enum_cls.__name__)}: {_e(members)}</span>"
        )
    return f"<code>{_e(readable_type(t))}</code>"


def _fields_table(fields: list[pa.Field[pa.DataType]]) -> str:
    rows = "".join(
        f"<tr><td><code>{_e(f.name)}</code></td><td><code>{_e(readable_type(f.type))}</code></td>"
        f"<td>{'nullable' if f.nullable else 'required'}</td></tr>"
        for f in fields
    )
    return (
        "<table class='fields'><thead><tr><th>Field</th><th>Arrow type</th><th></th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _params_table(info: RpcMethodInfo) -> str:
    if not info.params:
        return "<p class='kv'><b>Parameters:</b> none</p>"
    rows = []
    for p in info.params:
        if p.has_default:
            try:
                default = json.dumps(example_argument(p))
            except (TypeError, ValueError):
                default = repr(p.default)
            need = f"default <code>{_e(default)}</code>"
        else:
            need = "optional (null)" if p.field.nullable else "required"
        rows.append(
            f"<tr><td><code>{_e(p.name)}</code></td><td>{_type_html(p.field.type, p.codec)}</td>"
            f"<td class='py'>{_e(p.codec.python_name)}</td><td>{need}</td></tr>"
        )
    return (
        "<table class='fields params'><thead><tr><th>Parameter</th><th>Arrow type</th>"
        f"<th>Python</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _kind(info: RpcMethodInfo) -> str:
    if not info.is_stream:
        return "unary"
    if info.is_exchange is None:
        return "stream"
    return "exchange" if info.is_exchange else "producer"


def _signature(info: RpcMethodInfo) -> str:
    params = ", ".join(f"{p.name}: {readable_type(p.field.type)}" for p in info.params)
    kind = _kind(info)
    if kind != "unary":
        returns = f"{kind} stream" if kind != "stream" else "stream"
    elif info.result_codec is None:
        returns = "None"
    else:
        returns = readable_type(info.result_schema.field(0).type)
    return f"{info.name}({params}) → {returns}"


def _stream_html(info: RpcMethodInfo, rpc_path: str) -> str:
    kind = _kind(info)
    parts = []
    header = info.header_type
    if header is not None:
        schema = dataclass_schema(header)
        parts.append(
            f"<p class='kv'><b>Header:</b> <code>{_e(header.__name__)}</code>, sent once "
            f"before the first output batch</p>{_fields_table(list(schema))}"
        )
    else:
        parts.append("<p class='kv'><b>Header:</b> none</p>")
    inputs = {
        "exchange": "one input batch per output batch, on the input schema",
        "producer": "none: the server produces until it finishes",
        "stream": "producer or exchange, decided by the implementation",
    }[kind]
    parts.append(
        "<p class='kv'><b>Output and input schemas:</b> chosen by the implementation when the "
        "stream opens (<code>Stream(output_schema=..., input_schema=...)</code>)</p>"
        f"<p class='kv'><b>Input:</b> {_e(inputs)}</p>"
        f"<p class='kv'><b>Call it with a vgi-rpc client:</b> <code>POST {_e(rpc_path)}/init</code>, "
        f"then <code>{_e(rpc_path)}/exchange</code></p>"
    )
    return "".join(parts)


def _unary_html(info: RpcMethodInfo, call_url: str) -> str:
    if info.result_codec is None:
        result = "<p class='kv'><b>Returns:</b> nothing</p>"
    else:
        field = info.result_schema.field(0)
        result = f"<p class='kv'><b>Returns:</b> {_type_html(field.type, info.result_codec)}</p>"
    example = {p.name: example_argument(p) for p in info.params}
    text = json.dumps(example, indent=2, ensure_ascii=False) if example else "{}"
    rows = min(text.count("\n") + 1, 14)
    return (
        f"{result}<form class='call' data-url='{_e(call_url)}' autocomplete='off'>"
        f"<label class='py' for='a-{_e(call_url)}'>Parameters (JSON)</label>"
        f"<textarea id='a-{_e(call_url)}' name='params' rows='{rows}' spellcheck='false'>"
        f"{_e(text)}</textarea><button type='submit'>Call</button>"
        "<div class='result' role='status' aria-live='polite'></div></form>"
    )


def _method_html(view: ProtocolView, info: RpcMethodInfo, base: str) -> str:
    quoted = urllib.parse.quote(info.name, safe="")
    if view.routed:
        rpc_path = f"{base}/{urllib.parse.quote(view.name, safe='.')}/{quoted}"
        call_url = f"{base}/{CALL_SEGMENT}/{urllib.parse.quote(view.name, safe='.')}/{quoted}"
    else:
        rpc_path = f"{base}/{quoted}"
        call_url = f"{base}/{CALL_SEGMENT}/{quoted}"
    kind = _kind(info)
    body = _unary_html(info, call_url) if kind == "unary" else _stream_html(info, rpc_path)
    doc = f"<div class='doc'>{_e(info.doc)}</div>" if info.doc else ""
    label = "unary" if kind == "unary" else f"{kind} stream" if kind != "stream" else "stream"
    return (
        f"<article class='method' id='{_e(_anchor(view, info.name))}' data-protocol='{_e(view.key)}' "
        f"data-method='{_e(info.name)}' data-kind='{kind}'>"
        f"<h3><code>{_e(_signature(info))}</code><span class='badge {kind}'>{label}</span></h3>"
        f"{doc}{_params_table(info)}{body}</article>"
    )


def _anchor(view: ProtocolView, method: str | None = None) -> str:
    base = f"p-{view.key or '-first-generation'}"
    return base if method is None else f"{base}-{method}"


def _protocol_html(view: ProtocolView, base: str) -> str:
    version = f"<span class='ver'>{_e(view.version)}</span>" if view.version else ""
    note = f"<p class='note'>{_e(view.note)}</p>" if view.note else ""
    doc = f"<div class='doc'>{_e(view.doc)}</div>" if view.doc else ""
    methods = "".join(_method_html(view, view.methods[m], base) for m in sorted(view.methods))
    return (
        f"<section class='protocol' id='{_e(_anchor(view))}' data-protocol='{_e(view.key)}'>"
        f"<h2>{_e(view.name)}{version}</h2>{note}{doc}{methods}</section>"
    )


def _toc_html(views: list[ProtocolView]) -> str:
    parts = []
    for view in views:
        suffix = f" {view.version}" if view.version else ""
        items = "".join(
            f"<li data-method='{_e(m)}'><a href='#{_e(_anchor(view, m))}'>{_e(m)}</a></li>"
            for m in sorted(view.methods)
        )
        parts.append(
            f"<h2><a href='#{_e(_anchor(view))}'>{_e(view.name + suffix)}</a></h2><ul>{items}</ul>"
        )
    return f"<nav class='toc' aria-label='Methods'>{''.join(parts)}</nav>"


def render_page(server: RpcServer, base: str, nonce: str) -> str:
    """The whole page; ``base`` is the URL path of the prefix, ``nonce`` the CSP nonce."""
    views = protocol_views(server)
    own = [v for v in views if not v.name.startswith(FRAMEWORK_PREFIX)]
    title = own[0].name if own else server.protocol_name
    count = sum(len(v.methods) for v in views)
    sections = "".join(_protocol_html(view, base) for view in views)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>{_e(title)} · vgi-rpc</title><style nonce='{nonce}'>{STYLE}</style></head><body>"
        f"<header class='top'><h1>{_e(title)}</h1><p class='sub'>vgi-rpc service · "
        f"{len(views)} protocol{'s' if len(views) != 1 else ''}, {count} methods · server "
        f"<code>{_e(server.server_id)}</code></p><div class='tools'>"
        "<input type='search' id='filter' placeholder='Filter methods' aria-label='Filter methods'>"
        "<input class='authz' id='authz' placeholder='Authorization header (optional)' "
        "aria-label='Authorization header sent with calls' autocomplete='off'></div></header>"
        f"<div class='layout'>{_toc_html(views)}<main>{sections}</main></div>"
        f"<script nonce='{nonce}'>{SCRIPT}</script></body></html>"
    )


def _security_headers(resp: falcon.Response, nonce: str) -> None:
    resp.set_header(
        "Content-Security-Policy",
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'",
    )
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.set_header("Cache-Control", "no-store")


class ServicePage:
    """``GET {prefix}/``: the page (after ``authenticate``, like every RPC route)."""

    def __init__(self, server: RpcServer, prefix: str, access: PageAccess) -> None:
        self._server = server
        self._prefix = prefix
        self._access = access

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Render the page for this request's mount point."""
        if self._access.caller(req, resp) is None:
            return
        nonce = secrets.token_urlsafe(18)
        resp.content_type = "text/html; charset=utf-8"
        _security_headers(resp, nonce)
        resp.text = render_page(self._server, req.root_path + self._prefix, nonce)

    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The page's headers without its body."""
        if self._access.caller(req, resp) is None:
            return
        resp.content_type = "text/html; charset=utf-8"
        _security_headers(resp, secrets.token_urlsafe(18))


def add_page_routes(
    app: falcon.App[falcon.Request, falcon.Response],
    prefix: str,
    dispatcher: HttpDispatcher,
    access: PageAccess,
) -> None:
    """Mount the page at ``{prefix}/`` and its JSON call endpoint under ``{prefix}/page-call/``."""
    app.add_route(prefix or "/", ServicePage(dispatcher.server, prefix, access))
    call = PageCall(dispatcher, access)
    app.add_route(f"{prefix}/{CALL_SEGMENT}/{{first}}", call)
    app.add_route(f"{prefix}/{CALL_SEGMENT}/{{first}}/{{method}}", call, suffix="routed")


__all__ = ["PageAccess", "ProtocolView", "add_page_routes", "protocol_views", "render_page"]
