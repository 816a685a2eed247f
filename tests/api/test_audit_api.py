"""GET /v1/audit/events and `creditctl audit`: who may read what, filters, stable paging, verify, and an
export the few lines of Python (and sha256sum) of docs/auditors.md verify without our code."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.api.conftest import CUSTOMER_A, CUSTOMER_B, order
from tests.api.test_cli import cli  # noqa: F401  (the fixture)

pytestmark = pytest.mark.api
AUDITORS_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "auditors.md"


def events(api, key: str = "auditor", **params: object) -> dict:
    r = api.client.get("/v1/audit/events", query_string=params, headers=api.auth(key))
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.json


class TestAuditEventsApi:
    def test_a_decision_and_a_freeze_each_leave_one_event_with_actor_and_request_id(self, api):
        body = order()
        api.client.post(
            "/v1/decisions", json=body, headers={**api.auth("orders"), "X-Request-ID": "req-audit-1"}
        )
        api.freeze(CUSTOMER_A, "GB20", {"reason": "payment dispute"})
        decided = events(api, order_id=body["order_id"])["events"]
        assert [e["type"] for e in decided] == ["decision.made"]
        made = decided[0]
        assert made["actor"] == {
            "name": "test-orders",
            "role": "orders",
            "owner": "test-orders",
            "key_id": made["actor"]["key_id"],
        }
        assert made["request_id"] == "req-audit-1"
        assert made["after"]["outcome"] == "approve" and made["after"]["hold"]["amount"] == "100.00"
        assert made["hash"] == hashlib.sha256((made["prev_hash"] + made["payload"]).encode()).hexdigest()
        frozen = events(api, type="account.frozen", customer_code=CUSTOMER_A)["events"]
        assert len(frozen) == 1
        assert frozen[0]["before"]["status"] == "active"
        assert frozen[0]["after"]["status"] == "frozen"
        assert frozen[0]["actor"]["name"] == "test-admin"

    def test_rule_set_publish_rollback_assignment_and_params_are_recorded(self, api):
        admin = api.auth("admin")
        draft = api.client.post("/v1/rule-sets", json={"name": "d"}, headers=admin).json
        api.client.post(f"/v1/rule-sets/{draft['id']}/publish", json={"reason": "tighter"}, headers=admin)
        api.client.post("/v1/rule-sets/1/rollback", json={"reason": "undo"}, headers=admin)
        api.client.put(
            f"/v1/accounts/{CUSTOMER_A}/GB20/rule-set",
            json={"rule_set_id": 1, "reason": "pin"},
            headers=admin,
        )
        api.client.delete(f"/v1/accounts/{CUSTOMER_A}/GB20/rule-set", headers=admin)
        api.client.put(
            f"/v1/accounts/{CUSTOMER_A}/GB20/params",
            json={"params": {"safety_margin": "5.00"}},
            headers=admin,
        )
        kinds = [e["type"] for e in events(api, actor="test-admin")["events"]]
        for kind in (
            "rule_set.published",
            "rule_set.rolled_back",
            "rule_set.assigned",
            "rule_set.unassigned",
            "account.params_changed",
        ):
            assert kinds.count(kind) == 1, (kind, kinds)
        changed = events(api, type="account.params_changed")["events"][0]
        assert changed["after"]["params"] == {"safety_margin": "5.00"}

    def test_settle_and_release_are_recorded_against_the_order(self, api):
        settled, released = order(), order()
        for body in (settled, released):
            api.decide(body)
        api.act(settled["order_id"], "settle")
        api.act(released["order_id"], "release")
        assert events(api, order_id=settled["order_id"], type="hold.settled")["events"]
        assert events(api, order_id=released["order_id"], type="hold.released")["events"]

    def test_a_customer_limited_key_sees_only_its_customers_events(self, api, context):
        from creditctl.services.api_keys import create_api_key

        limited = create_api_key(
            name="auditor-a", role="auditor", customers=[CUSTOMER_A], uow=context.uow(), clock=context.clock
        ).secret
        api.decide(order(customer=CUSTOMER_A))
        api.decide(order(customer=CUSTOMER_B))
        seen = events(api, key=limited, limit=1000)["events"]
        assert seen and {e["subject"].get("customer_code") for e in seen} == {CUSTOMER_A}
        r = api.client.get(f"/v1/audit/events?customer_code={CUSTOMER_B}", headers=api.auth(limited))
        assert r.status_code == 404
        everyone = {e["subject"].get("customer_code") for e in events(api, limit=1000)["events"]}
        assert {CUSTOMER_A, CUSTOMER_B, None} <= everyone  # the keys made above have no customer

    def test_orders_keys_may_not_read_the_trail(self, api):
        r = api.client.get("/v1/audit/events", headers=api.auth("orders"))
        assert r.status_code == 403

    def test_pages_follow_the_chain_and_do_not_shift_when_events_are_added(self, api):
        for _ in range(5):
            api.decide(order())
        first = events(api, type="decision.made", limit=2)
        more = [api.decide(order()) for _ in range(3)]
        assert all(r.status_code == 201 for r in more)
        seen = [e["position"] for e in first["events"]]
        cursor = first["next_cursor"]
        while cursor is not None:
            page = events(api, type="decision.made", limit=2, cursor=cursor)
            seen += [e["position"] for e in page["events"]]
            cursor = page["next_cursor"]
        assert seen == sorted(set(seen)) and len(seen) == 8


class TestAuditCli:
    def test_verify_says_ok_with_the_head(self, api, cli):  # noqa: F811
        api.decide(order())
        out = cli("audit", "verify").output
        assert re.search(r"ok: \d+ events sealed and verified, head \d+:[0-9a-f]{64}", out), out

    def test_the_head_seal_prints_is_what_verify_anchor_takes(self, api, cli):  # noqa: F811
        """Kept by hand and given back later: the line `audit seal` prints, as it is."""
        api.decide(order())
        sealed = cli("audit", "seal")
        head = sealed.stdout.strip()
        assert re.fullmatch(r"\d+:[0-9a-f]{64}", head), sealed.stdout
        assert re.search(r"sealed \d+ events", sealed.stderr)
        checked = cli("audit", "verify", "--anchor", head).output
        assert f"checked against 1 anchors from {head}" in checked
        api.decide(order())
        cli("audit", "seal")
        verified = cli("audit", "verify").output
        copied = re.search(r"head \d+:[0-9a-f]{64};", verified).group(0)  # from verify's own line
        assert "checked against 1 anchors" in cli("audit", "verify", "--anchor", copied).output
        position = head.split(":")[0]
        wrong = f"{position}:{'0' * 64}"
        broken = cli("audit", "verify", "--anchor", wrong, ok=False)
        assert broken.exit_code == 1 and f"BROKEN at position {position}" in broken.output

    def test_verify_fails_when_events_wait_too_long_for_a_seal(self, api, cli, clock):  # noqa: F811
        """Until sealed an event is protected only by the database's permissions: no sealer running is
        a failure an operator must see, not a footnote."""
        clock.set(datetime.now(UTC))  # events take the database's real time: the fake starts from it
        api.decide(order())
        cli("audit", "seal")
        api.decide(order())  # not sealed: verify does not seal
        assert "1 not sealed yet (the oldest for 0 s)" in cli("audit", "verify").output
        clock.advance(301)  # the database's clock, as the tests wire it
        stale = cli("audit", "verify", ok=False)
        assert stale.exit_code == 1 and "STALE: events have waited 301 s for a seal" in stale.output
        assert cli("audit", "verify", "--max-unsealed-age", "600").exit_code == 0
        cli("audit", "seal")
        assert "0 not sealed yet" in cli("audit", "verify").output

    def test_export_periods_honour_an_offset_and_refuse_what_is_not_a_time(self, api, cli, tmp_path):  # noqa: F811
        api.decide(order())  # at the database's time of its INSERT
        made = events(api, type="decision.made")["events"][-1]
        at = datetime.fromisoformat(made["at"]).replace(second=0, microsecond=0)  # UTC, its minute
        shanghai = at.astimezone(timezone(timedelta(hours=8)))
        out = tmp_path / "a.jsonl"

        def exported(since: str, until: str) -> int:
            cli("audit", "export", "--from", since, "--to", until, "--out", str(out))
            return len(out.read_text(encoding="utf-8").splitlines())

        local = shanghai.strftime("%Y-%m-%dT%H:%M")  # the same minute in Shanghai's local time
        assert (
            exported(
                f"{local}+08:00", f"{(shanghai + timedelta(minutes=1)).strftime('%Y-%m-%dT%H:%M')}+08:00"
            )
            >= 1
        )
        assert (
            exported(local, (shanghai + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")) == 0
        )  # naive: UTC
        # (and an export that finds nothing empties the file an earlier one wrote)
        utc = at.strftime("%Y-%m-%dT%H:%M")
        assert exported(f"{utc}Z", f"{(at + timedelta(minutes=1)).strftime('%Y-%m-%dT%H:%M')}Z") >= 1
        bad = cli("audit", "export", "--from", "last tuesday", ok=False)
        assert bad.exit_code == 2 and "not an ISO 8601 date or time" in bad.output
        far = cli("audit", "export", "--from", "0001-01-01T00:00+01:00", ok=False)
        assert far.exit_code == 2 and "outside the years 1 to 9999" in far.output

    @pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"])
    def test_a_time_outside_the_years_python_holds_once_made_utc_is_a_422_not_a_500(self, api, moment):
        r = api.client.get("/v1/audit/events", query_string={"from": moment}, headers=api.auth("auditor"))
        assert r.status_code == 422 and "1 to 9999" in r.get_data(as_text=True)

    @pytest.mark.parametrize(
        "moment", ["0001-01-01T00:00:00+00:00", "1900-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]
    )
    def test_any_other_time_is_accepted(self, api, moment):
        r = api.client.get("/v1/audit/events", query_string={"from": moment}, headers=api.auth("auditor"))
        assert r.status_code == 200, r.get_data(as_text=True)

    def test_the_readme_snippet_and_sha256sum_verify_a_real_export(self, api, cli, tmp_path):  # noqa: F811
        for _ in range(3):
            api.decide(order())
        api.freeze(CUSTOMER_A, "GB20", {"reason": "check"})
        export = tmp_path / "audit.jsonl"
        cli("audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--out", str(export))
        lines = export.read_text(encoding="utf-8").splitlines()
        assert len(lines) >= 4
        snippet = tmp_path / "verify.py"
        snippet.write_text(_readme_block("python", after="The whole file"), encoding="utf-8")
        ok = subprocess.run([sys.executable, str(snippet), str(export)], capture_output=True, text=True)
        assert ok.returncode == 0 and ok.stdout.startswith(f"ok: {len(lines)} events"), ok
        shell = _readme_block("sh", after="One line by hand").replace("audit.jsonl", str(export))
        digest = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, check=True).stdout
        assert digest.split()[0] == json.loads(lines[0])["hash"]
        second = json.loads(lines[1])
        second["payload"] = second["payload"].replace('"type":"', '"type":"x')
        edited = json.dumps(second)
        export.write_text("\n".join([lines[0], edited, *lines[2:]]) + "\n", encoding="utf-8")
        bad = subprocess.run([sys.executable, str(snippet), str(export)], capture_output=True, text=True)
        assert bad.returncode == 1 and "line 2" in bad.stderr


def _readme_block(language: str, *, after: str) -> str:
    text = AUDITORS_GUIDE.read_text(encoding="utf-8")
    start = text.index(after)
    match = re.search(rf"```{language}\n(.*?)```", text[start:], re.S)
    assert match, f"no {language} block after {after!r}"
    return match.group(1)
