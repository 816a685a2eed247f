"""The seed's front end in a real browser: headless Chromium loads a page from another origin that runs the
seed hook's logic against a served creditctl (GET /api/haier/balance/ with the key header; on success it
shows `data.data.payerAccountBalance`, else `data.error`).

It proves what a person would see: the balance; an error's message as text (never "[object Object]" or
"undefined"); and that a page from an origin not in CREDITCTL_CORS_ORIGINS is kept from the answer.

Needs Debian's chromium and chromium-driver (`./scripts/setup dev` installs them when it runs as root with
apt-get). Without them the test skips saying so; with CI=true it fails."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.conftest import IN_CI
from tests.e2e.served import served_demo

pytestmark = pytest.mark.e2e

CUSTOMER = "8800633175"  # a demo customer with a GB20 payer account
PAGE_WAIT_S = 10.0

# The seed hook's logic, as the seed's front end runs it: the key in a header, `data.error` as the message.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>balance</title></head>
<body>
<p>Balance: <span id="result">loading</span></p>
<script>
const q = new URLSearchParams(location.search);
const out = document.getElementById("result");
function show(state, text) { out.textContent = String(text); out.dataset.state = state; }
async function useHaierBalance() {
  const url = q.get("api") + "/api/haier/balance/?customer_code=" + encodeURIComponent(q.get("customer"))
    + "&sale_group_code=" + encodeURIComponent(q.get("group"));
  try {
    const response = await fetch(url, { headers: { "X-API-Key": q.get("key") } });
    const data = await response.json();
    if (data.success) { show("ok", data.data.payerAccountBalance); }
    else { show("error", data.error); }
  } catch (e) {
    show("blocked", "request failed: " + e.message);
  }
}
useHaierBalance();
</script>
</body></html>
"""


@dataclass(frozen=True)
class Api:
    url: str
    orders_key: str


def _browser_paths() -> tuple[str, str]:
    """Debian's chromium and its chromedriver; skip (fail under CI) without them or without selenium."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = shutil.which("chromedriver")
    if browser is None:
        missing.append("chromium")
    if driver is None:
        missing.append("chromedriver (Debian: chromium-driver)")
    if missing:
        reason = (
            f"browser test needs {', '.join(missing)}: run ./scripts/setup dev as root, or apt-get install"
        )
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the browser test must run)")
        pytest.skip(reason)
    assert browser is not None and driver is not None
    return browser, driver


class _PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def browser_paths() -> tuple[str, str]:
    return _browser_paths()


@pytest.fixture(scope="module")
def pages() -> Iterator[dict[str, str]]:
    """Two tiny static servers serving the page: one origin allowed by creditctl, one not."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler) for _ in range(2)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        allowed, other = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
        yield {"allowed": allowed, "other": other}
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


@pytest.fixture(scope="module")
def api(
    browser_paths: tuple[str, str], pages: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """creditctl served by gunicorn on SQLite with the fake provider and demo data, allowing one origin."""
    folder = tmp_path_factory.mktemp("seed-front-end")
    with served_demo(folder, CREDITCTL_CORS_ORIGINS=pages["allowed"]) as served:
        yield Api(url=served.url, orders_key=served.keys["orders"])


@pytest.fixture(scope="module")
def driver(browser_paths: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = browser_paths
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never runs (it would try to download a driver).
    service = Service(executable_path=chromedriver, log_output=subprocess.DEVNULL)
    chrome = webdriver.Chrome(service=service, options=options)
    chrome.set_page_load_timeout(PAGE_WAIT_S)
    try:
        yield chrome
    finally:
        chrome.quit()


def shown(driver: Any, page_origin: str, api: Api, *, key: str, customer: str, group: str) -> tuple[str, str]:
    """Open the page from `page_origin` and wait for the hook to render: (state, text shown)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    query = urlencode({"api": api.url, "key": key, "customer": customer, "group": group})
    driver.get(f"{page_origin}/?{query}")
    result = WebDriverWait(driver, PAGE_WAIT_S).until(
        lambda d: (el := d.find_element(By.ID, "result")).get_attribute("data-state") and el
    )
    return result.get_attribute("data-state"), result.text


def test_the_balance_renders(driver: Any, pages: dict[str, str], api: Api) -> None:
    stored = requests.get(
        f"{api.url}/v1/balances/{CUSTOMER}", headers={"X-API-Key": api.orders_key}, timeout=10
    ).json()
    balance = next(a["balance"] for a in stored["accounts"] if a["sale_group_code"] == "GB20")
    state, text = shown(driver, pages["allowed"], api, key=api.orders_key, customer=CUSTOMER, group="GB20")
    assert (state, text) == ("ok", balance)
    assert re.fullmatch(r"\d+\.\d{2}", text)


@pytest.mark.parametrize(
    ("case", "expected"),
    [("bad key", "the API key is not valid"), ("unknown customer", "unknown customer '8800999999'")],
)
def test_an_error_renders_its_message(
    driver: Any, pages: dict[str, str], api: Api, case: str, expected: str
) -> None:
    key = "cck_not-a-real-key" if case == "bad key" else api.orders_key
    customer = "8800999999" if case == "unknown customer" else CUSTOMER
    state, text = shown(driver, pages["allowed"], api, key=key, customer=customer, group="GB20")
    assert state == "error"
    assert text == expected
    assert text not in ("[object Object]", "undefined")


def test_a_page_from_another_origin_is_blocked_by_cors(driver: Any, pages: dict[str, str], api: Api) -> None:
    state, text = shown(driver, pages["other"], api, key=api.orders_key, customer=CUSTOMER, group="GB20")
    assert state == "blocked", text
    assert not re.search(r"\d\.\d{2}", text)
    console = " ".join(entry["message"] for entry in driver.get_log("browser"))
    assert "CORS policy" in console, console
