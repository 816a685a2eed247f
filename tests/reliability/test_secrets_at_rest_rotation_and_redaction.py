"""Reliability 14: secrets at rest, key rotation and redaction, end to end.

A config with known secrets goes in through the API on a file-backed SQLite database; tokens and
balances come from the emulator over real HTTP, which is made to echo the credentials it receives in
its error answers. Everything runs with logging at DEBUG. Then no captured log record (message, args,
extras, traceback), no API answer and no byte of the database files holds a secret, a token or a
"Bearer <value>". Rotation: sealed with key A, read with (B, A), re-sealed, read with B alone; a
tampered ciphertext is a clean SecretUnreadable, and decisions fall back instead of failing."""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, select, update
from werkzeug.test import TestResponse

from adapters.bootstrap import Settings, bootstrap, check_upstream, reseal_secrets
from adapters.fake.clock import FakeClock
from adapters.sql.secret_box import FernetSecretBox
from adapters.sql.tables import metadata, upstream_configs, upstream_tokens, webhook_subscriptions
from adapters.sql.token_store import SqlTokenStore
from adapters.web.app import create_app
from creditctl.ports.secret_box import SecretUnreadable
from creditctl.services.api_keys import create_api_key
from creditctl.services.context import AppContext
from creditctl.services.customers import register_customer
from creditctl.services.upstream_configs import get_config
from creditctl.services.webhook_delivery import deliver_round
from tests.adapters.haier_support import (
    ACCOUNTS_175,
    ACCOUNTS_176,
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER,
    CUSTOMER_2,
    KEY_A,
    KEY_B,
    KNOWN_SECRETS,
    EmulatorServer,
    config_document,
    known_emulator_app,
    serving,
)
from tests.reliability.checkers import assert_checkers, books_for, saw_answer, starting_money
from tests.webhook_receiver import Receiver, running

pytestmark = pytest.mark.adapters

USERNAME = "ylh-user"
PASSWORD = "pw-KNOWN-9c8b7a6d5e"
BEARER = re.compile(r"(?i)\bbearer\s+(?!\*\*\*)[A-Za-z0-9\-._~+/]{6,}")
CLOCK_START = datetime.fromisoformat("2026-11-27T08:00:00+00:00")


@dataclass
class Stack:
    """The service wired for haier on a file-backed SQLite database, with the emulator upstream."""

    settings: Settings
    context: AppContext
    client: FlaskClient
    emulator: EmulatorServer
    engine: Engine
    keys: dict[str, str]
    answers: list[TestResponse] = field(default_factory=list)

    def call(self, method: str, path: str, role: str = "orders", **kwargs: Any) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        r = self.client.open(path, method=method, headers=headers, **kwargs)
        self.answers.append(r)
        return r

    def secrets(self) -> set[str]:
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        return {*KNOWN_SECRETS, PASSWORD, basic, *self.keys.values(), *self.emulator.issued_tokens()}


def settings_for(engine: Engine, tmp_path: Path, *keys: str) -> Settings:
    return Settings(
        instance_path=tmp_path / "instance",
        database_url=str(engine.url),
        balance_provider="haier",
        allow_loopback_urls=True,
        secret_keys=keys,
    )


@pytest.fixture
def stack(sqlite_engine: Engine, tmp_path: Path) -> Iterator[Stack]:
    clock = FakeClock(CLOCK_START)
    settings = settings_for(sqlite_engine, tmp_path, KEY_A)
    with serving(known_emulator_app(username=USERNAME, password=PASSWORD)) as emulator:
        ctx = bootstrap(settings, clock=clock, engine=sqlite_engine, database_clock=clock)
        keys = {
            role: create_api_key(
                name=f"k-{role}", role=role, customers=None, uow=ctx.uow(), clock=clock
            ).secret
            for role in ("admin", "orders")
        }
        for code in (CUSTOMER, CUSTOMER_2):
            register_customer(code, uow=ctx.uow(), clock=clock)
        client = create_app(ctx, {"TESTING": True}).test_client()
        yield Stack(settings, ctx, client, emulator, sqlite_engine, keys)


def record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage()]
    parts += [f"{k}={v!r}" for k, v in vars(record).items()]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def database_bytes(engine: Engine) -> bytes:
    path = Path(str(engine.url.database))
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return b"".join(p.read_bytes() for p in files if p.exists())


def test_no_secret_in_logs_answers_or_the_database_file(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock: FakeClock = stack.context.clock  # type: ignore[assignment]
    emulator = stack.emulator

    put = stack.call("PUT", "/v1/admin/haier/configs/emu", role="admin", json=config_document(emulator.url))
    assert put.status_code == 200, put.json
    password_flow = config_document(
        emulator.url,
        auth="password",
        token_url=emulator.url + "/oauth/token",
        username=USERNAME,
        password=PASSWORD,
        is_active=False,
    )
    assert (
        stack.call("PUT", "/v1/admin/haier/configs/pw", role="admin", json=password_flow).status_code == 200
    )
    assert stack.call("GET", "/v1/admin/haier/configs/emu", role="admin").json["client_secret"] == "set"

    # 1. a token and balances, both customers (one by its own password, one by the fallback)
    for code in (CUSTOMER, CUSTOMER_2):
        r = stack.call("GET", f"/v1/balances/{code}?refresh=true")
        assert r.status_code == 200, r.json
    assert stack.call("GET", f"/api/haier/balance/?customer_code={CUSTOMER}").json["success"] is True

    # 2. tokens revoked; the new token request is refused by an upstream echoing the client secret
    emulator.fault("revoke_tokens")
    emulator.echo.mode = "token"
    clock.advance(60)
    refused = stack.call("GET", f"/v1/balances/{CUSTOMER}?refresh=true")
    assert refused.status_code == 502, refused.json
    assert refused.json["errors"]["upstream"] == ["INVALID_CREDENTIALS"]

    # 3. the check command on the password flow, with the echoing token endpoint, then without
    failed_check = check_upstream(stack.settings, "pw", CUSTOMER)
    assert failed_check[0]["ok"] is False
    emulator.echo.mode = None
    good_check = check_upstream(stack.settings, "pw", CUSTOMER)
    assert [s["ok"] for s in good_check] == [True, True]

    # 4. a balance endpoint that fails echoing the bearer token and the customer password it got
    emulator.echo.mode = "balance"
    clock.advance(60)
    echoed = stack.call("GET", f"/v1/balances/{CUSTOMER}?refresh=true")
    assert echoed.status_code == 503, echoed.json
    clock.advance(301)
    seed = stack.call("GET", f"/api/haier/balance/?customer_code={CUSTOMER_2}")
    assert seed.json["success"] is False
    assert emulator.echo.echoed >= 3
    emulator.echo.mode = None

    # 5. webhooks: a subscription made with an Idempotency-Key (its answer, showing the secret once, is
    # kept), its secret rotated, deliveries signed and sent to a receiver that fails with 500
    webhook_secrets = webhook_paths_at_debug(stack)

    secrets = stack.secrets()
    assert len(emulator.issued_tokens()) >= 2
    leaks = [
        (r.name, r.levelname, secret[:6])
        for r in caplog.records
        for secret in secrets
        if secret in record_text(r)
    ]
    assert leaks == []
    bearer = [record_text(r)[:200] for r in caplog.records if BEARER.search(record_text(r))]
    assert bearer == []
    assert any(r.name == "creditctl.haier" for r in caplog.records)  # the upstream calls were logged
    for answer in stack.answers:
        text = answer.get_data(as_text=True) + repr(dict(answer.headers))
        assert not [s for s in secrets if s in text], text
        assert not BEARER.search(text), text
    for step in failed_check + good_check:
        assert not [s for s in secrets if s in repr(step)], step
    raw = database_bytes(stack.engine)
    assert b"enc:v1:" in raw
    assert [s[:6] for s in secrets if s.encode() in raw] == []
    # the webhook secrets were shown once, as they must be (not in stack.answers), and nowhere else
    assert any(r.name == "creditctl.webhooks" for r in caplog.records)  # the dead delivery was logged
    assert [(r.name, s[:6]) for r in caplog.records for s in webhook_secrets if s in record_text(r)] == []
    assert [s[:6] for s in webhook_secrets if s.encode() in raw] == []


def webhook_paths_at_debug(stack: Stack) -> list[str]:
    """Create (idempotently), rotate, and deliver to a failing receiver; the secrets the API showed."""
    admin = _auth(stack, "admin")
    receiver = Receiver("", status=500)
    with running(receiver):
        made = stack.client.post(
            "/v1/webhooks",
            json={"url": receiver.url, "events": ["upstream.down"]},
            headers={**admin, "Idempotency-Key": "debug-paths"},
        )
        assert made.status_code == 201, made.json
        again = stack.client.post(
            "/v1/webhooks",
            json={"url": receiver.url, "events": ["upstream.down"]},
            headers={**admin, "Idempotency-Key": "debug-paths"},
        )
        assert again.json == made.json
        rotated = stack.client.post(f"/v1/webhooks/{made.json['id']}/rotate-secret", json={}, headers=admin)
        assert rotated.status_code == 200, rotated.json
        tools = stack.context.webhooks
        assert tools is not None
        with stack.context.uow() as uow:
            uow.outbox.add(event_id="debug-1", topic="upstream.down", payload={}, now=uow.now())
            uow.commit()
        once = dataclasses.replace(tools.policy, max_attempts=1)  # dead at once: its error is logged
        deliver_round(store=tools.store, notifier=tools.notifier, box=tools.box, policy=once)
        assert receiver.requests >= 1
    return [made.json["secret"], rotated.json["secret"]]


def test_rotation_seal_with_a_read_with_b_and_a_reseal_then_b_alone(stack: Stack, tmp_path: Path) -> None:
    put = stack.call(
        "PUT", "/v1/admin/haier/configs/emu", role="admin", json=config_document(stack.emulator.url)
    )
    assert put.status_code == 200
    assert stack.call("GET", f"/v1/balances/{CUSTOMER}?refresh=true").status_code == 200
    token_a = SqlTokenStore(stack.engine, FernetSecretBox([KEY_A])).current("emu")
    assert token_a is not None
    sealed_a = stored(stack.engine)

    both = settings_for(stack.engine, tmp_path, KEY_B, KEY_A)
    assert opened_config(both)["client_secret"] == "set"
    assert open_plain(both)["client_secret"] == CLIENT_SECRET
    assert SqlTokenStore(stack.engine, FernetSecretBox([KEY_B, KEY_A])).current("emu") == token_a

    assert reseal_secrets(both) == {"configs": 1, "tokens": 1, "webhooks": 0, "idempotent_answers": 0}
    assert stored(stack.engine) != sealed_a

    only_b = settings_for(stack.engine, tmp_path, KEY_B)
    plain = open_plain(only_b)
    assert plain["client_secret"] == CLIENT_SECRET
    assert plain["customers"] == config_document("x")["customers"]
    assert SqlTokenStore(stack.engine, FernetSecretBox([KEY_B])).current("emu") == token_a
    with pytest.raises(SecretUnreadable):
        open_plain(settings_for(stack.engine, tmp_path, KEY_A))

    # the service on key B alone uses the re-sealed config and token: no new token call
    calls = stack.emulator.stats()["token_calls"]
    clock = FakeClock(CLOCK_START)
    clock.advance(120)
    ctx = bootstrap(only_b, clock=clock, engine=stack.engine, database_clock=clock)
    client = create_app(ctx, {"TESTING": True}).test_client()
    r = client.get(
        f"/v1/balances/{CUSTOMER}?refresh=true", headers={"Authorization": f"Bearer {stack.keys['orders']}"}
    )
    assert r.status_code == 200, r.json
    assert stack.emulator.stats()["token_calls"] == calls


def test_a_tampered_ciphertext_is_a_clean_error(stack: Stack, tmp_path: Path) -> None:
    put = stack.call(
        "PUT", "/v1/admin/haier/configs/emu", role="admin", json=config_document(stack.emulator.url)
    )
    assert put.status_code == 200
    document = stored(stack.engine)
    sealed = document["client_secret"]
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    document["client_secret"] = flipped
    with stack.engine.begin() as conn:
        conn.execute(
            update(upstream_configs).where(upstream_configs.c.name == "emu").values(document=document)
        )

    with pytest.raises(SecretUnreadable) as caught:
        open_plain(settings_for(stack.engine, tmp_path, KEY_A))
    message = str(caught.value)
    assert message == "a stored secret cannot be decrypted with the configured keys"
    assert flipped not in message and KEY_A not in message

    shown = stack.call("GET", "/v1/admin/haier/configs/emu", role="admin")
    assert shown.status_code == 500
    assert shown.json["detail"] == message
    assert flipped not in shown.get_data(as_text=True)

    # keeping an unreadable secret is refused cleanly; sending every secret anew repairs the config
    keep = config_document(stack.emulator.url, client_secret="set")
    kept = stack.call("PUT", "/v1/admin/haier/configs/emu", role="admin", json=keep)
    assert kept.status_code == 500 and kept.json["detail"] == message
    again = stack.call(
        "PUT", "/v1/admin/haier/configs/emu", role="admin", json=config_document(stack.emulator.url)
    )
    assert again.status_code == 200, again.json
    assert open_plain(settings_for(stack.engine, tmp_path, KEY_A))["client_secret"] == CLIENT_SECRET

    with pytest.raises(SecretUnreadable):
        FernetSecretBox([KEY_A]).open("enc:v1:" + "x" * 40)
    with pytest.raises(SecretUnreadable, match="not a sealed secret"):
        FernetSecretBox([KEY_A]).open(CLIENT_SECRET)


def test_decisions_fall_back_when_the_stored_config_cannot_be_opened(stack: Stack, tmp_path: Path) -> None:
    put = stack.call(
        "PUT", "/v1/admin/haier/configs/emu", role="admin", json=config_document(stack.emulator.url)
    )
    assert put.status_code == 200
    assert stack.call("GET", f"/v1/balances/{CUSTOMER}?refresh=true").status_code == 200
    clock = FakeClock(CLOCK_START)
    clock.advance(600)  # stale for refresh, usable as a fallback
    ctx = bootstrap(
        settings_for(stack.engine, tmp_path, KEY_B), clock=clock, engine=stack.engine, database_clock=clock
    )
    client = create_app(ctx, {"TESTING": True}).test_client()
    order = {
        "order_id": "order-rotated-1",
        "customer_code": CUSTOMER,
        "sale_group_code": "1002",
        "amount": "100.00",
    }
    r = client.post("/v1/decisions", json=order, headers={"Authorization": f"Bearer {stack.keys['orders']}"})
    assert r.status_code in (200, 201), r.json
    assert r.json["outcome"] == "approve"
    assert Decimal(r.json["balance"]["amount"]) == Decimal("38000.50")
    ready = client.get("/readyz").json
    assert ready["upstream"]["haier_breaker"] == "unconfigured"
    books = books_for(starting_money({CUSTOMER: ACCOUNTS_175, CUSTOMER_2: ACCOUNTS_176}))  # the emulator's
    assert saw_answer(books, r.json)
    assert_checkers(stack.engine, books)


# -- helpers ------------------------------------------------------------------------------------------


def stored(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(select(upstream_configs.c.document)).scalar_one())


def opened_config(settings: Settings) -> dict[str, Any]:
    ctx = bootstrap(settings)
    tools = ctx.upstream_configs
    assert tools is not None
    return get_config("emu", validate=tools.validate, redact=tools.redact, uow=ctx.uow(), box=tools.box)


def open_plain(settings: Settings) -> dict[str, Any]:
    from creditctl.services.upstream_configs import active_config

    ctx = bootstrap(settings)
    tools = ctx.upstream_configs
    assert tools is not None
    active = active_config("haier", uow=ctx.uow(), box=tools.box)
    assert active is not None
    return active.document


def token_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(upstream_tokens)).all())


def test_rotation_reseals_webhook_signing_secrets_so_the_old_key_can_retire(
    stack: Stack, tmp_path: Path
) -> None:
    """Subscriptions' secrets are sealed with the same keys: retiring key A after a reseal must leave
    every subscription able to sign, the current secret and, during an overlap, the previous one."""
    made = stack.call(
        "POST",
        "/v1/webhooks",
        role="admin",
        json={"url": "http://127.0.0.1:9/hook", "events": ["decision.deferred"]},
    )
    assert made.status_code == 201, made.json
    sub_id, first = made.json["id"], made.json["secret"]
    rotated = stack.call("POST", f"/v1/webhooks/{sub_id}/rotate-secret", role="admin", json={})
    assert rotated.status_code == 200, rotated.json
    second = rotated.json["secret"]

    assert reseal_secrets(settings_for(stack.engine, tmp_path, KEY_B, KEY_A))["webhooks"] == 1

    only_b = FernetSecretBox([KEY_B])
    with stack.engine.connect() as conn:
        row = conn.execute(
            select(webhook_subscriptions.c.secret, webhook_subscriptions.c.previous_secret).where(
                webhook_subscriptions.c.id == sub_id
            )
        ).one()
    assert (only_b.open(row.secret), only_b.open(row.previous_secret)) == (second, first)


# -- every sealed column, listed from the schema --------------------------------------------------------

SEALED_PREFIX = "enc:v1:"


def sealed_columns() -> set[tuple[str, str]]:
    """The columns the schema marks as holding sealed values (adapters/sql/tables.py, SEALED)."""
    return {(t.name, c.name) for t in metadata.sorted_tables for c in t.columns if c.info.get("sealed")}


def sealed_values(engine: Engine) -> dict[tuple[str, str], list[str]]:
    """Every sealed value in the database, wherever it is: each column of each table of the schema, and
    each string inside a JSON document, read row by row."""
    found: dict[tuple[str, str], list[str]] = {}

    def walk(where: tuple[str, str], value: Any) -> None:
        if isinstance(value, str) and value.startswith(SEALED_PREFIX):
            found.setdefault(where, []).append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(where, v)
        elif isinstance(value, list):
            for v in value:
                walk(where, v)

    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    walk((table.name, column), value)
    return found


def test_every_sealed_value_opens_with_the_new_key_alone_after_a_reseal(stack: Stack, tmp_path: Path) -> None:
    """Everything the service seals, in every table that holds a secret (and any added later: the scan
    reads every column of every table), is re-encrypted by a reseal, so the old key can be retired; and a
    delivery, an upstream call and the retry of an answer that showed a secret still work on the new key
    alone. A sealed value in a column the schema does not mark SEALED fails here."""
    put = stack.call(
        "PUT", "/v1/admin/haier/configs/emu", role="admin", json=config_document(stack.emulator.url)
    )
    assert put.status_code == 200, put.json
    assert stack.call("GET", f"/v1/balances/{CUSTOMER}?refresh=true").status_code == 200  # a token
    receiver = Receiver("")
    with running(receiver):
        made_body = {"url": receiver.url, "events": ["upstream.down"]}
        again = {"Idempotency-Key": "reseal-1"}
        made = stack.client.post("/v1/webhooks", json=made_body, headers={**again, **_auth(stack, "admin")})
        assert made.status_code == 201, made.json
        rotated = stack.call("POST", f"/v1/webhooks/{made.json['id']}/rotate-secret", role="admin", json={})
        assert rotated.status_code == 200, rotated.json

        before = sealed_values(stack.engine)
        assert set(before) == sealed_columns(), (
            "sealed values found in the columns on the left; the schema marks those on the right: "
            f"{sorted(before)} != {sorted(sealed_columns())}"
        )
        counts = reseal_secrets(settings_for(stack.engine, tmp_path, KEY_B, KEY_A))
        assert all(counts.values()), counts  # one of each kind was there to re-encrypt

        only_b = FernetSecretBox([KEY_B])
        after = sealed_values(stack.engine)
        assert set(after) == set(before)
        unreadable = []
        for where, values in after.items():
            for value in values:
                try:
                    only_b.open(value)
                except SecretUnreadable:
                    unreadable.append(where)
        assert not unreadable, f"not re-encrypted by the reseal: {sorted(set(unreadable))}"

        # the service on key B alone: the idempotent retry, an upstream call, a signed delivery
        clock = FakeClock(CLOCK_START)
        clock.advance(120)
        ctx = bootstrap(
            settings_for(stack.engine, tmp_path, KEY_B),
            clock=clock,
            engine=stack.engine,
            database_clock=clock,
        )
        client = create_app(ctx, {"TESTING": True}).test_client()
        retried = client.post("/v1/webhooks", json=made_body, headers={**again, **_auth(stack, "admin")})
        assert (retried.status_code, retried.json) == (201, made.json)
        r = client.get(f"/v1/balances/{CUSTOMER}?refresh=true", headers=_auth(stack, "orders"))
        assert r.status_code == 200, r.json
        receiver.secret = rotated.json["secret"]
        tools = ctx.webhooks
        assert tools is not None
        with ctx.uow() as uow:
            uow.outbox.add(event_id="after-reseal", topic="upstream.down", payload={}, now=uow.now())
            uow.commit()
        for _ in range(5):
            deliver_round(store=tools.store, notifier=tools.notifier, box=tools.box, policy=tools.policy)
            if receiver.processed:
                break
        assert list(receiver.processed) == ["after-reseal"] and receiver.bad_signatures == 0


def _auth(stack: Stack, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.keys[role]}"}
