"""The service page in a real browser: Debian's headless Chromium, driven through chromedriver.

Serves the conformance worker over HTTP (``conformance/worker.py --http 0 --describe``),
opens ``/vgi/`` and checks the page against what the server says about itself
on the wire (reflection and ``__describe__``, not the page's own source): every
method of every protocol is there with its kind, and the form calls a unary
method and shows its result. The screenshot goes to ``docs/page.png``.

``scripts/browser.sh`` (run by ``./run tests``) installs chromium and
chromium-driver; under CI a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT
from tests.http._helpers import ARROW, read_batches, stream_body
from vgi_rpc.http import http_introspect
from vgi_rpc.rpc import ONE_EMPTY_ROW, ProtocolList, parse_describe_batch
from vgi_rpc.wire import keys as k
from vgi_rpc.wire import request_metadata

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT = Path(ROOT) / "docs" / "page.png"
REFLECTION = "vgi_rpc.Reflection.v1"


@pytest.fixture(scope="module")
def worker_url() -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, "conformance", "worker.py"),
            "--http",
            "0",
            "--describe",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "VGI_RPC_SIGNING_KEY": "page test"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first.startswith("PORT:"), first
        yield f"http://127.0.0.1:{first[5:]}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _post(url: str, method: str, protocol: str | None, batch: Any = ONE_EMPTY_ROW) -> bytes:
    extra = {k.PROTOCOL_KEY: protocol.encode()} if protocol is not None else None
    body = stream_body(batch, request_metadata(method, None, None, extra))
    reply = httpx.post(f"{url}/vgi/{method}", content=body, headers=ARROW)
    assert reply.status_code == 200, reply.text
    return reply.content


def _served_methods(url: str) -> dict[tuple[str, str], str]:
    """(protocol key, method) -> kind, as the server describes itself on the wire.

    Hosted protocols come from ``vgi_rpc.Reflection.v1`` and each one's
    ``__describe__``; the first-generation default (key ``""``) from the plain
    ``__describe__`` that first-generation clients read.
    """
    [(batch, _)] = read_batches(_post(url, "list_protocols", REFLECTION))
    listed = ProtocolList.deserialize_from_bytes(batch.column(0)[0].as_py())
    served: dict[tuple[str, str], str] = {}
    for summary in listed.protocols:
        [(described, metadata)] = read_batches(_post(url, "__describe__", summary.protocol))
        description = parse_describe_batch(described, metadata)
        assert description.protocol_name == summary.protocol
        for m in description.methods.values():
            served[(summary.protocol, m.name)] = _kind(m.method_type, m.is_exchange)
    first_generation = http_introspect(url)
    for m in first_generation.methods.values():
        served[("", m.name)] = _kind(m.method_type, m.is_exchange)
    return served


def _kind(method_type: object, is_exchange: bool | None) -> str:
    if str(getattr(method_type, "value", method_type)) == "unary":
        return "unary"
    return {True: "exchange", False: "producer", None: "stream"}[is_exchange]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        reason = f"{', '.join(missing)} not installed (scripts/browser.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,820",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def _call(driver: Any, protocol: str, method: str, params: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    article = driver.find_element(
        By.CSS_SELECTOR, f"article.method[data-protocol='{protocol}'][data-method='{method}']"
    )
    area = article.find_element(By.CSS_SELECTOR, "form.call textarea")
    area.clear()
    area.send_keys(params)
    article.find_element(By.CSS_SELECTOR, "form.call button").click()
    result = article.find_element(By.CSS_SELECTOR, ".result")
    WebDriverWait(driver, 30).until(lambda _: result.get_attribute("data-state") in ("ok", "error"))
    return result


def test_the_page_shows_every_method_and_its_form_calls_one(worker_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    served = _served_methods(worker_url)
    assert len({key for key, _ in served}) >= 4  # 2.0.0, Secondary, Reflection, the 1.0.0 default
    browser.get(worker_url + "/vgi/")
    assert browser.title.startswith("ConformanceService")
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('article.method'), "
        "a => [a.dataset.protocol, a.dataset.method, a.dataset.kind, a.offsetHeight > 0])"
    )
    assert all(visible for *_, visible in shown)
    assert {(p, m): kind for p, m, kind, _ in shown} == served
    assert len(shown) == len(served)  # nothing listed twice

    result = _call(browser, "ConformanceService", "add_floats", '{"a": 1.5, "b": 2.25}')
    assert result.get_attribute("data-state") == "ok"
    assert result.find_element(By.CSS_SELECTOR, "pre.value").text == "3.75"
    assert "HTTP 200" in result.text

    point = _call(browser, "ConformanceService", "echo_point", '{"point": {"x": 1, "y": -2.5}}')
    assert point.get_attribute("data-state") == "ok"
    assert '"y": -2.5' in point.find_element(By.CSS_SELECTOR, "pre.value").text

    failed = _call(
        browser, "ConformanceService", "raise_value_error", '{"message": "no <b>bold</b>"}'
    )
    assert failed.get_attribute("data-state") == "error"
    assert "ValueError: no <b>bold</b>" in failed.text  # shown as text, never parsed as HTML
    assert failed.find_elements(By.CSS_SELECTOR, "b") == []

    refused = _call(browser, "ConformanceService", "echo_int8", '{"value": 300}')
    assert refused.get_attribute("data-state") == "error"
    assert "out of range for int8" in refused.text

    # The inline script and style ran under the page's CSP, and nothing else was fetched:
    # the only failed load is the call refused above (HTTP 400).
    log = browser.get_log("browser")
    assert not [e for e in log if "Content Security Policy" in e["message"]]
    failures = [e["message"] for e in log if e["level"] == "SEVERE"]
    assert len(failures) == 1, failures
    assert "/vgi/page-call/ConformanceService/echo_int8" in failures[0]

    browser.execute_script("window.scrollTo(0, 0)")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
