"""SqlTokenStore: one upstream token per config for every thread and every process on the database.

On SQLite and PostgreSQL (the `engine` fixture): cold callers make one fetch, stores that stand for
separate processes share it, the token is sealed at rest, invalidate drops only the refused value, a
waiter returns the token another caller stored. On PostgreSQL, 8 real processes x 16 threads starting
cold against the emulator make exactly one token call.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from adapters.sql.secret_box import FernetSecretBox
from adapters.sql.tables import upstream_tokens
from adapters.sql.token_store import SqlTokenStore
from adapters.sql.upstream_configs import SqlUpstreamConfigRepository
from creditctl.ports.token_store import Token
from creditctl.ports.upstream_configs import StoredConfig
from tests.adapters.concurrency import all_at_once
from tests.adapters.haier_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    KEY_A,
    KEY_B,
    clear_upstream_tables,
    known_emulator_app,
    serving,
)

pytestmark = pytest.mark.adapters

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The `engine` fixture (SQLite, then PostgreSQL), with the token table cleared afterwards."""
    yield engine
    clear_upstream_tables(engine)


def box(*keys: str) -> FernetSecretBox:
    return FernetSecretBox(keys or (KEY_A,))


def fresh_name() -> str:
    return f"cfg-{uuid.uuid4().hex[:10]}"


class Fetcher:
    """Counts calls and hands out numbered tokens; can pause (until released) or fail."""

    def __init__(
        self,
        prefix: str = "tok",
        *,
        expires_in_s: float = 3600,
        pause_s: float = 0.0,
        error: Exception | None = None,
        gate: threading.Event | None = None,
        now: datetime | None = None,
    ) -> None:
        self.prefix = prefix
        self.calls = 0
        self._lock = threading.Lock()
        self.expires_in_s = expires_in_s
        self.pause_s = pause_s
        self.error = error
        self.gate = gate
        self.now = now  # tokens expire counted from this moment (default: the wall clock)
        self.started = threading.Event()

    def __call__(self) -> Token:
        with self._lock:
            self.calls += 1
            n = self.calls
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10), "the test never released the fetch"
        time.sleep(self.pause_s)
        if self.error is not None:
            raise self.error
        return Token(
            value=f"{self.prefix}-SECRET-{n}-{uuid.uuid4().hex[:6]}",
            expires_at=(self.now or datetime.now(UTC)) + timedelta(seconds=self.expires_in_s),
        )


def obtain(store: SqlTokenStore, name: str, fetch: Fetcher, refresh_before_s: float = 600) -> Token:
    return store.obtain(name, fetch, refresh_before_s=refresh_before_s, now=datetime.now(UTC))


def raw_row(engine: Engine, name: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(select(upstream_tokens).where(upstream_tokens.c.config_name == name)).first()
    assert row is not None
    return dict(row._mapping)


class TestSingleFlightInOneProcess:
    def test_sixteen_cold_threads_make_one_fetch(self, db: Engine) -> None:
        store, fetch, name = SqlTokenStore(db, box()), Fetcher(pause_s=0.2), fresh_name()
        results = all_at_once(16, lambda i: obtain(store, name, fetch))
        assert [r.error for r in results if r.error] == []
        assert fetch.calls == 1
        assert len({r.value.value for r in results}) == 1

    def test_stores_standing_for_separate_processes_share_one_fetch(self, db: Engine) -> None:
        """Four stores (four lease holders, as four processes would be) x 8 threads, all cold."""
        name = fresh_name()
        stores = [SqlTokenStore(db, box(), poll_s=0.02) for _ in range(4)]
        fetches = [Fetcher(f"p{i}", pause_s=0.3) for i in range(4)]
        results = all_at_once(32, lambda i: obtain(stores[i % 4], name, fetches[i % 4]))
        assert [r.error for r in results if r.error] == []
        assert sum(f.calls for f in fetches) == 1
        assert len({r.value.value for r in results}) == 1

    def test_reused_until_ten_minutes_before_expiry_then_refreshed_once(self, db: Engine) -> None:
        store, fetch, name = SqlTokenStore(db, box()), Fetcher(), fresh_name()
        first = store.obtain(name, fetch, refresh_before_s=600, now=datetime.now(UTC))
        assert first.expires_at > datetime.now(UTC) + timedelta(minutes=59)
        almost = first.expires_at - timedelta(minutes=10, seconds=1)
        assert store.obtain(name, fetch, refresh_before_s=600, now=almost).value == first.value
        due = first.expires_at - timedelta(minutes=9, seconds=59)
        fetch.now = due
        results = all_at_once(8, lambda i: store.obtain(name, fetch, refresh_before_s=600, now=due))
        assert fetch.calls == 2
        assert {r.value.value for r in results} == {store.current(name).value} != {first.value}


class TestAtRest:
    def test_the_token_is_sealed_in_the_database(self, db: Engine) -> None:
        store, name = SqlTokenStore(db, box()), fresh_name()
        token = obtain(store, name, Fetcher())
        row = raw_row(db, name)
        assert str(row["token"]).startswith("enc:v1:")
        assert token.value not in repr(row)
        with db.connect() as conn:
            dump = repr(conn.execute(text("SELECT * FROM upstream_tokens")).all())
        assert token.value not in dump
        assert store.current(name) == token

    def test_a_token_no_key_opens_counts_as_none_and_is_fetched_again(self, db: Engine) -> None:
        name = fresh_name()
        old = obtain(SqlTokenStore(db, box(KEY_A)), name, Fetcher("old"))
        other_keys = SqlTokenStore(db, box(KEY_B))
        assert other_keys.current(name) is None
        fetch = Fetcher("new")
        fresh = obtain(other_keys, name, fetch)
        assert fetch.calls == 1 and fresh.value != old.value
        assert other_keys.current(name) == fresh

    def test_reseal_all_moves_tokens_to_the_newest_key(self, db: Engine) -> None:
        name = fresh_name()
        token = obtain(SqlTokenStore(db, box(KEY_A)), name, Fetcher())
        sealed_before = raw_row(db, name)["token"]
        assert SqlTokenStore(db, box(KEY_B, KEY_A)).reseal_all() >= 1
        assert raw_row(db, name)["token"] != sealed_before
        assert SqlTokenStore(db, box(KEY_B)).current(name) == token
        assert SqlTokenStore(db, box(KEY_A)).current(name) is None


class TestInvalidate:
    def test_drops_only_the_same_value(self, db: Engine) -> None:
        store, name = SqlTokenStore(db, box()), fresh_name()
        token = obtain(store, name, Fetcher())
        store.invalidate(name, "some-older-token")
        assert store.current(name) == token
        store.invalidate(name, token.value)
        assert store.current(name) is None
        store.invalidate("no-such-config", "x")  # never raises

    def test_a_newer_token_stored_meanwhile_is_kept(self, db: Engine) -> None:
        name = fresh_name()
        a, b = SqlTokenStore(db, box()), SqlTokenStore(db, box())
        refused = obtain(a, name, Fetcher("first"))
        a.invalidate(name, refused.value)
        newer = obtain(b, name, Fetcher("second"))
        a.invalidate(name, refused.value)  # a late second 401 for the same old token
        assert a.current(name) == newer

    def test_a_token_stored_between_the_check_and_the_drop_is_kept(self, db: Engine) -> None:
        """B checks "the stored token is the refused one", A stores a new token, then B drops: the
        drop must only ever remove the refused value."""
        name, checked, release = fresh_name(), threading.Event(), threading.Event()
        pause = {"on": False}

        class PausedAfterCheck(SqlTokenStore):
            def current(self, config_name: str) -> Token | None:
                found = super().current(config_name)
                if pause["on"]:
                    checked.set()
                    assert release.wait(10)
                return found

            def _open_stored(self, config_name: str) -> tuple[str | None, Token | None]:
                found = super()._open_stored(config_name)  # type: ignore[misc]
                if pause["on"]:
                    checked.set()
                    assert release.wait(10)
                return found  # type: ignore[no-any-return]

        a, b = SqlTokenStore(db, box()), PausedAfterCheck(db, box())
        refused = obtain(a, name, Fetcher("old"))
        pause["on"] = True
        dropper = threading.Thread(target=b.invalidate, args=(name, refused.value))
        dropper.start()
        assert checked.wait(5)
        newer = a.obtain(name, Fetcher("new"), refresh_before_s=7200, now=datetime.now(UTC))
        assert newer.value != refused.value
        release.set()
        dropper.join(10)
        pause["on"] = False
        assert a.current(name) == newer


def put_config(engine: Engine, name: str, *, reseal: bool = False) -> None:
    """An administrator's change of the config `name` (or, with reseal, a key rotation of it)."""
    with engine.begin() as conn:
        configs = SqlUpstreamConfigRepository(conn)
        if reseal:
            configs.reseal(name, {"base_url": "https://openplat-test.haier.net", "resealed": True})
        else:
            configs.put(StoredConfig(name, "haier", {"base_url": "https://x.example"}, False, NOW, NOW))


class TestConfigChange:
    def test_any_change_of_the_config_drops_its_token(self, db: Engine) -> None:
        store, name, other = SqlTokenStore(db, box()), fresh_name(), fresh_name()
        obtain(store, name, Fetcher())
        obtain(store, other, Fetcher())
        put_config(db, name)
        assert store.current(name) is None
        assert store.current(other) is not None  # another config's token stays

    def test_a_key_rotation_of_the_config_keeps_its_token(self, db: Engine) -> None:
        store, name = SqlTokenStore(db, box()), fresh_name()
        put_config(db, name)
        token = obtain(store, name, Fetcher())
        put_config(db, name, reseal=True)
        assert store.current(name) == token

    def test_a_fetch_running_across_a_change_never_stores_its_token(self, db: Engine) -> None:
        store, name = SqlTokenStore(db, box()), fresh_name()
        gate = threading.Event()
        fetch = Fetcher("old", gate=gate)
        got: list[Token] = []
        worker = threading.Thread(target=lambda: got.append(obtain(store, name, fetch)))
        worker.start()
        assert fetch.started.wait(5)
        put_config(db, name)  # the old settings' fetch is still under way
        gate.set()
        worker.join(10)
        assert len(got) == 1  # its own caller still gets an answer
        assert store.current(name) is None
        fresh = obtain(store, name, Fetcher("new"))
        assert fresh.value.startswith("new-")


class TestWaiters:
    def test_a_waiter_returns_the_token_another_process_stored_even_short_lived(self, db: Engine) -> None:
        """B finds A's lease, waits, and takes A's token although it lives less than refresh_before."""
        name, gate = fresh_name(), threading.Event()
        a, b = SqlTokenStore(db, box(), poll_s=0.02), SqlTokenStore(db, box(), poll_s=0.02)
        slow = Fetcher("a", expires_in_s=60, gate=gate)
        got: dict[str, Token] = {}
        leader = threading.Thread(target=lambda: got.setdefault("a", obtain(a, name, slow)))
        leader.start()
        assert slow.started.wait(5)
        assert raw_row(db, name)["lease_holder"] is not None
        b_fetch = Fetcher("b")
        waiter = threading.Thread(target=lambda: got.setdefault("b", obtain(b, name, b_fetch)))
        waiter.start()
        time.sleep(0.2)
        gate.set()
        leader.join(10)
        waiter.join(10)
        assert b_fetch.calls == 0
        assert got["b"].value == got["a"].value
        assert raw_row(db, name)["lease_holder"] is None

    def test_a_token_stored_between_the_read_and_the_lease_is_used(self, db: Engine) -> None:
        """B reads "no token", A fetches and stores (its lease ends), then B takes the free lease:
        B must return A's token instead of fetching a second one."""
        name, paused, release = fresh_name(), threading.Event(), threading.Event()

        class PausedBeforeLease(SqlTokenStore):
            def _take(self, config_name: str, now: datetime) -> bool:
                paused.set()
                assert release.wait(10)
                return super()._take(config_name, now)

        a, b = SqlTokenStore(db, box()), PausedBeforeLease(db, box(), poll_s=0.02)
        b_fetch = Fetcher("b")
        got: dict[str, Token] = {}
        waiter = threading.Thread(target=lambda: got.setdefault("b", obtain(b, name, b_fetch)))
        waiter.start()
        assert paused.wait(5)
        got["a"] = obtain(a, name, Fetcher("a"))
        release.set()
        waiter.join(10)
        assert b_fetch.calls == 0, "a second token was fetched although one had just been stored"
        assert got["b"].value == got["a"].value

    def test_a_failed_fetch_stores_nothing_frees_the_lease_and_propagates(self, db: Engine) -> None:
        store, name = SqlTokenStore(db, box()), fresh_name()
        with pytest.raises(RuntimeError, match="token endpoint down"):
            obtain(store, name, Fetcher(error=RuntimeError("token endpoint down")))
        row = raw_row(db, name)
        assert row["token"] is None and row["lease_holder"] is None
        other = SqlTokenStore(db, box())
        assert obtain(other, name, Fetcher("next")).value.startswith("next-")


@pytest.mark.postgres
def test_eight_processes_of_sixteen_threads_make_exactly_one_token_call(
    postgres_url: str, postgres_engine: Engine, tmp_path: Path
) -> None:
    """Round 1: every process starts cold, one token call in all. Round 2: the platform revokes every
    token; each 401 invalidates the refused token, and the processes again share one new token."""
    customers = [f"88000{i:05d}" for i in range(16)]
    accounts = {
        code: {
            "password": "cpw-shared",
            "accounts": [
                {
                    "saleGroupCode": "1001",
                    "saleGroupName": "air",
                    "payerAccountCode": code,
                    "payerAccountName": f"payer {code}",
                    "payerAccountBalance": "100.00",
                }
            ],
        }
        for code in customers
    }
    name = fresh_name()
    go = [tmp_path / "go-1", tmp_path / "go-2"]
    with serving(known_emulator_app(customers=accounts, rate_limit_per_s=100_000)) as emulator:
        args = {
            "database_url": postgres_url,
            "keys": [KEY_A],
            "name": name,
            "go": [str(p) for p in go],
            "threads": 16,
            "customers": customers,
            "config": {
                "base_url": emulator.url,
                "auth": "client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "auth_scheme": "Bearer",
                "customer_password": "cpw-shared",
                "is_active": True,
            },
        }
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.adapters.token_worker_process", json.dumps(args)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        try:
            for w in workers:
                assert w.stdout is not None
                assert w.stdout.readline().strip() == "ready", w.stderr.read() if w.stderr else ""
            go[0].touch()
            first = [json.loads(w.stdout.readline()) for w in workers if w.stdout is not None]
            cold = emulator.stats()
            emulator.fault("revoke_tokens")
            go[1].touch()
            outputs = [w.communicate(timeout=90) for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
                w.communicate()  # its pipes closed also when it ended on its own before its output was read
        revoked = emulator.stats()
    clear_upstream_tables(postgres_engine)
    second = [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]
    for answers in (first, second):
        results = [r for a in answers for r in a["results"]]
        assert len(results) == 128
        assert [r for r in results if not r["ok"]] == []
        assert len({a["token_sha256"] for a in answers}) == 1
    assert cold["token_calls"] == 1, cold
    assert cold["balance_calls"] >= 16
    assert revoked["token_calls"] == 2, revoked
    assert first[0]["token_sha256"] != second[0]["token_sha256"]
    assert all(w.returncode == 0 for w in workers)
