"""The operator console in headless Chromium against a served creditctl: sign in with a key, find an
account, freeze it and see its status change and its audit event (and verify the chain), open a
decision's trace, open a report and see its chart, then sign in as a key with approval authority and
release a deferred order from the review queue.

The test saves screenshots of the main pages to a temporary folder; with
CREDITCTL_SCREENSHOTS_DIR=docs/screenshots it refreshes the README's (otherwise a test run leaves tracked
files alone). It uses the
seed front end test's browser fixtures: Debian's chromium and chromedriver, skipped (failed with CI=true)
without them."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.served import run_ok, served_demo
from tests.e2e.test_seed_front_end import browser_paths, driver  # noqa: F401  (fixtures)

pytestmark = pytest.mark.e2e

CUSTOMER = "8800633175"  # a demo customer with a GB20 payer account
# Deferred orders (the default rules send orders above 500,000.00 to manual review): the first two within
# the lead's approval authority, the third beyond it. GA10 holds 1,250,000.00, 8800900003's 520,000.00.
DEFERRED = (("PO-UI-4", CUSTOMER, "600000.00"), ("PO-UI-5", "8800900003", "510000.00"))
DEFERRED += (("PO-UI-6", CUSTOMER, "640000.00"),)
LEAD_AUTHORITY = "620000.00"
SHOTS = Path(os.environ.get("CREDITCTL_SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="console-screenshots-"))
WAIT_S = 10.0


@pytest.fixture(scope="module")
def served(
    browser_paths: tuple[str, str],  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """creditctl served by gunicorn on SQLite with demo data and a few decisions; its URL and keys."""
    with served_demo(tmp_path_factory.mktemp("console")) as served:
        keys, url = dict(served.keys), served.url
        lead = (
            "keys",
            "create",
            "--role",
            "admin",
            "--name",
            "credit-lead",
            "--approval-limit",
            LEAD_AUTHORITY,
        )
        keys["lead"] = run_ok(*lead, cwd=served.folder, env=served.env).strip()
        for n, amount in enumerate(("1999.98", "25000.00", "600000.00", "90000.00")):
            body = {"order_id": f"PO-UI-{n}", "customer_code": CUSTOMER, "sale_group_code": "GB20"}
            r = requests.post(
                f"{url}/v1/decisions",
                json=body | {"amount": amount},
                headers={"X-API-Key": keys["orders"]},
                timeout=10,
            )
            assert r.status_code == 201, r.text
        for order_id, customer, amount in DEFERRED:
            body = {"order_id": order_id, "customer_code": customer, "sale_group_code": "GA10"}
            r = requests.post(
                f"{url}/v1/decisions",
                json=body | {"amount": amount},
                headers={"X-API-Key": keys["orders"]},
                timeout=10,
            )
            assert r.status_code == 201 and r.json()["state"] == "deferred", r.text
        yield {"url": url, **keys, "folder": str(served.folder), "env": served.env}


def _shot(browser: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


def _wait_for(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.CSS_SELECTOR, css))


def _wait_until(browser: Any, css: str, check: Any) -> Any:
    """Wait until the element (found again each time: a page may be replaced) passes `check`."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def ready(d: Any) -> Any:
        try:
            el = d.find_element(By.CSS_SELECTOR, css)
            return el if check(el) else None
        except (NoSuchElementException, StaleElementReferenceException):
            return None
        except WebDriverException as exc:
            # The page was replaced between finding the element and reading it, told by chromium's
            # inspector in its own words rather than as a stale element (seen once in CI).
            if "does not belong to the document" in str(exc.msg):
                return None
            raise

    return WebDriverWait(browser, WAIT_S).until(ready)


def test_sign_in_find_an_account_freeze_it_and_read_a_report(
    driver: Any,  # noqa: F811
    served: dict[str, Any],
) -> None:
    from selenium.webdriver.common.by import By

    driver.set_window_size(1200, 860)
    url = served["url"]
    driver.get(f"{url}/console/accounts")
    _wait_for(driver, "#api_key")  # not signed in: the sign-in page
    _shot(driver, "sign-in")
    driver.find_element(By.ID, "api_key").send_keys(served["admin"])
    driver.find_element(By.ID, "sign-in").click()

    _wait_for(driver, "#accounts")
    driver.find_element(By.ID, "q").send_keys(CUSTOMER)
    driver.find_element(By.ID, "search").click()
    _wait_until(driver, "#accounts", lambda _: "q=" in driver.current_url)
    rows = driver.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")
    assert rows and all(CUSTOMER in row.text for row in rows)
    _shot(driver, "accounts")
    next(r for r in rows if "GB20" in r.text).find_element(By.LINK_TEXT, CUSTOMER).click()

    assert _wait_for(driver, "#account-status").text == "active"
    driver.find_element(By.ID, "freeze-reason").send_keys("payment dispute")
    driver.find_element(By.ID, "freeze").click()
    _wait_until(driver, "#account-status", lambda el: el.text == "frozen")
    assert "payment dispute" in driver.page_source
    _shot(driver, "account")
    state = requests.get(
        f"{url}/v1/accounts/{CUSTOMER}/GB20", headers={"X-API-Key": served["auditor"]}, timeout=10
    ).json()
    assert state["status"] == "frozen"

    driver.find_element(By.LINK_TEXT, "Audit trail").click()
    _wait_for(driver, "#filters")
    driver.find_element(By.NAME, "customer_code").send_keys(CUSTOMER)
    driver.find_element(By.NAME, "sale_group_code").send_keys("GB20")
    driver.find_element(By.ID, "filter").click()
    _wait_until(driver, "#events", lambda _: "sale_group_code=GB20" in driver.current_url)
    frozen = [
        r for r in driver.find_elements(By.CSS_SELECTOR, "#events tbody tr") if "account.frozen" in r.text
    ]
    assert len(frozen) == 1 and "demo-admin (admin)" in frozen[0].text, [r.text for r in frozen]
    driver.find_element(By.ID, "verify").click()
    result = _wait_for(driver, "#verify-result")
    assert result.text.startswith("verified: "), result.text
    frozen = [
        r for r in driver.find_elements(By.CSS_SELECTOR, "#events tbody tr") if "account.frozen" in r.text
    ]
    frozen[0].find_element(By.TAG_NAME, "summary").click()
    assert "payment dispute" in frozen[0].find_element(By.CSS_SELECTOR, ".before-after").text
    driver.set_window_size(1200, 1500)  # the chain's state, the filters and the account's events
    driver.execute_script("window.scrollTo(0, 0)")
    _shot(driver, "audit")
    driver.set_window_size(1200, 860)

    driver.get(f"{url}/console/decisions?order_id=PO-UI-2")
    driver.find_element(By.LINK_TEXT, "PO-UI-2").click()
    assert _wait_for(driver, "#trace tr.matched")
    _shot(driver, "decision")

    driver.get(f"{url}/console/rule-sets/1")
    _wait_for(driver, "#document")
    _shot(driver, "rule-set")

    tighter = requests.get(f"{url}/v1/rule-sets/1", headers={"X-API-Key": served["admin"]}, timeout=10).json()
    document = tighter["document"]
    document["params"] = {**document.get("params", {}), "single_order_review_amount": "1000.00"}
    draft = requests.post(
        f"{url}/v1/rule-sets",
        json={"name": "review above 1,000", "document": document},
        headers={"X-API-Key": served["admin"]},
        timeout=10,
    )
    assert draft.status_code == 201, draft.text
    driver.get(f"{url}/console/rule-sets/{draft.json()['id']}")
    driver.find_element(By.NAME, "from").send_keys("2000-01-01")
    driver.find_element(By.NAME, "to").send_keys("2100-01-01")
    driver.find_element(By.XPATH, "//button[text()='Replay the period']").click()
    assert _wait_for(driver, "#status").text == "queued"  # a job: the page follows it, refreshing itself
    worker = run_ok("worker", "--once", "--seal-every", "0", cwd=Path(served["folder"]), env=served["env"])
    assert "backtests run 1;" in worker and "succeeded" in worker, worker
    _wait_until(driver, "#status", lambda el: el.text == "succeeded")  # the page's own refresh shows it
    changed = {r.get_attribute("data-order") for r in _rows(driver, "#changed-orders tbody tr[data-order]")}
    assert changed == {"PO-UI-0", "PO-UI-1"}, changed  # 1,999.98 and 25,000.00 approved: now to review
    _shot(driver, "backtest")

    driver.get(f"{url}/console/reports/decisions")
    chart = _wait_for(driver, "figure.chart svg")
    bars = chart.find_elements(By.TAG_NAME, "rect")
    assert bars, "the chart has bars"
    assert any("approve" in (b.find_element(By.TAG_NAME, "title").get_attribute("textContent")) for b in bars)
    _shot(driver, "report-decisions")
    driver.find_element(By.ID, "as-json").click()
    assert '"by_day"' in driver.page_source

    driver.get(f"{url}/console/reports/exposure")
    assert _wait_for(driver, "figure.chart svg").find_elements(By.TAG_NAME, "rect")

    driver.get(f"{url}/console/reviews")
    row = _wait_for(driver, 'tr[data-order="PO-UI-4"]')
    assert "Above your approval authority" in row.text  # the demo admin key has none
    driver.find_element(By.CSS_SELECTOR, "form.who button").click()  # sign out
    _wait_for(driver, "#api_key").send_keys(served["lead"])
    driver.find_element(By.ID, "sign-in").click()
    _wait_for(driver, "#accounts")
    driver.find_element(By.LINK_TEXT, "Review queue").click()
    rows = {r.get_attribute("data-order"): r for r in _queue_rows(driver)}
    assert list(rows) == [order_id for order_id, _, _ in DEFERRED]  # oldest first
    assert "Above your approval authority (620,000.00)" in rows["PO-UI-6"].text
    assert "620,000.00" in driver.find_element(By.ID, "authority").text
    rows["PO-UI-4"].find_element(By.CSS_SELECTOR, "form.release input[name=reason]").send_keys(
        "Transfer confirmed by phone"
    )
    _shot(driver, "review-queue")
    rows["PO-UI-4"].find_element(By.CSS_SELECTOR, "form.release button").click()
    flash = _wait_until(driver, "p.flash", lambda el: "PO-UI-4" in el.text)
    assert flash.text == "PO-UI-4 released: now approve; available 1,250,000.00 before, 650,000.00 after."
    assert [r.get_attribute("data-order") for r in _queue_rows(driver)] == ["PO-UI-5", "PO-UI-6"]
    decision = requests.get(
        f"{url}/v1/decisions/PO-UI-4", headers={"X-API-Key": served["auditor"]}, timeout=10
    ).json()
    assert (decision["outcome"], decision["reviews"][0]["by"]) == ("approve", "credit-lead")

    driver.get(f"{url}/console/decisions/{CUSTOMER}/PO-UI-4")
    release = _wait_for(driver, '#review-history tr[data-action="release"]')
    assert "Transfer confirmed by phone" in release.text and "credit-lead" in release.text
    assert "1,250,000.00" in release.text and "650,000.00" in release.text  # available before and after
    assert _wait_for(driver, "#hold-status").text == "open"
    _shot(driver, "released-order")


def _queue_rows(browser: Any) -> list[Any]:
    return _rows(browser, "#queue tbody tr[data-order]")


def _rows(browser: Any, css: str) -> list[Any]:
    """The rows of a table once the page showing it has loaded."""
    from selenium.webdriver.common.by import By

    _wait_for(browser, css.split(" ", 1)[0])
    return list(browser.find_elements(By.CSS_SELECTOR, css))
