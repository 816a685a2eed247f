"""`creditctl haier configure|show|check` and `creditctl secrets rotate`, through click's CliRunner with
CliOps built as adapters.bootstrap.main builds them, around Settings for a temporary instance (file-backed
SQLite, haier provider, loopback allowed) and the emulator on a loopback port."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, select

from adapters.bootstrap import Settings, bootstrap, check_upstream, reseal_secrets
from adapters.cli.main import CliOps, build_cli
from adapters.sql.migrate import upgrade
from adapters.sql.secret_box import FernetSecretBox
from adapters.sql.tables import upstream_configs
from adapters.sql.token_store import SqlTokenStore
from tests.adapters.haier_support import (
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

pytestmark = pytest.mark.adapters

STEP = re.compile(r"^(ok  |FAIL) (token|balance)\s+(\d+\.\d) ms(?: \[([A-Z_]+)\])?  (.*)$")

Run = Callable[..., Result]


class Instance:
    """The settings every command reads; tests swap the keys to rotate them."""

    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        self.settings = Settings(
            instance_path=tmp_path / "instance",
            database_url=str(engine.url),
            balance_provider="haier",
            allow_loopback_urls=True,
            secret_keys=(KEY_A,),
        )

    def keys(self, *keys: str) -> None:
        self.settings = Settings(**{**self.settings.__dict__, "secret_keys": keys})


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with serving(known_emulator_app()) as server:
        yield server


@pytest.fixture
def instance(sqlite_engine: Engine, tmp_path: Path) -> Instance:
    return Instance(sqlite_engine, tmp_path)


@pytest.fixture
def run(instance: Instance) -> Run:
    ops = CliOps(
        load_settings=lambda: instance.settings,
        make_context=lambda: bootstrap(instance.settings),
        upgrade_db=lambda: upgrade(instance.settings.database_url),
        database_url=lambda: instance.settings.database_url,
        configure_logging=lambda level: None,
        check_upstream=lambda name, customer: check_upstream(instance.settings, name, customer),
        run_emulator=lambda host, port: None,
        reseal_secrets=lambda: reseal_secrets(instance.settings),
    )
    command = build_cli(ops)
    runner = CliRunner()

    def invoke(*args: str, ok: bool | None = True, input: str | None = None) -> Result:
        result = runner.invoke(command, list(args), input=input, catch_exceptions=False)
        if ok is True:
            assert result.exit_code == 0, result.output
        elif ok is False:
            assert result.exit_code != 0, result.output
        for secret in KNOWN_SECRETS:
            assert secret not in result.output, result.output
        return result

    return invoke


def write(tmp_path: Path, document: Any, name: str = "haier.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return str(path)


def steps(output: str) -> list[tuple[str, str, float, str | None, str]]:
    found = []
    for line in output.splitlines():
        match = STEP.match(line)
        assert match, f"not a step line: {line!r}"
        found.append((match[1].strip(), match[2], float(match[3]), match[4], match[5]))
    return found


class TestConfigureAndShow:
    def test_configure_from_a_file_shows_secrets_as_set_and_seals_them(
        self, run: Run, tmp_path: Path, emulator: EmulatorServer, sqlite_engine: Engine
    ) -> None:
        out = run("haier", "configure", "emu", "--file", write(tmp_path, config_document(emulator.url)))
        shown = json.loads(out.output)
        assert shown["client_secret"] == "set"
        assert shown["customer_password"] == "set"
        assert shown["customers"] == {CUSTOMER: "set"}
        assert shown["base_url"] == emulator.url
        with sqlite_engine.connect() as conn:
            raw = repr(conn.execute(select(upstream_configs.c.document)).scalar_one())
        assert "enc:v1:" in raw and not [s for s in KNOWN_SECRETS if s in raw]

    def test_configure_from_stdin_and_show(self, run: Run, emulator: EmulatorServer) -> None:
        run("haier", "configure", "emu", "--file", "-", input=json.dumps(config_document(emulator.url)))
        shown = json.loads(run("haier", "show", "emu").output)
        assert shown["name"] == "emu"
        assert shown["is_active"] is True
        assert shown["client_secret"] == "set"
        assert shown["timeouts"] == {"connect_s": 2.0, "read_s": 5.0}

    def test_set_keeps_the_stored_secrets(self, run: Run, tmp_path: Path, emulator: EmulatorServer) -> None:
        run("haier", "configure", "emu", "--file", write(tmp_path, config_document(emulator.url)))
        keep = config_document(
            emulator.url, client_secret="set", customer_password="set", customers={CUSTOMER: "set"}
        )
        run("haier", "configure", "emu", "--file", write(tmp_path, keep, "keep.json"))
        assert steps(run("haier", "check", "emu").output)[1][0] == "ok"

    @pytest.mark.parametrize(
        ("document", "expected"),
        [
            ({"base_url": "http://169.254.169.254"}, "base_url"),
            ({"token_url": "http://0x7f.1/oauth2/auth"}, "token_url"),
            ({"base_url": "https://good@evil.example"}, "base_url"),
            ({"auth": "magic"}, "auth"),
            ({"client_secret": "set"}, "client_secret"),
        ],
    )
    def test_a_refused_config_names_its_fields_and_no_secret(
        self, run: Run, tmp_path: Path, emulator: EmulatorServer, document: dict[str, Any], expected: str
    ) -> None:
        path = write(tmp_path, config_document(emulator.url) | document)
        result = run("haier", "configure", "new", "--file", path, ok=False)
        assert result.exit_code == 1
        assert expected in result.output
        assert "Traceback" not in result.output
        assert run("haier", "show", "new", ok=False).exit_code == 1

    def test_not_json_and_unknown_names_are_clean_errors(self, run: Run, tmp_path: Path) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text("{not json", encoding="utf-8")
        assert "not JSON" in run("haier", "configure", "x", "--file", str(bad), ok=False).output
        assert "no upstream config named 'nope'" in run("haier", "show", "nope", ok=False).output
        assert "no upstream config named 'nope'" in run("haier", "check", "nope", ok=False).output


class TestCheck:
    def test_against_the_emulator_each_step_ok_with_its_latency(
        self, run: Run, tmp_path: Path, emulator: EmulatorServer
    ) -> None:
        run("haier", "configure", "emu", "--file", write(tmp_path, config_document(emulator.url)))
        found = steps(run("haier", "check", "emu").output)
        assert [(s[0], s[1], s[3]) for s in found] == [("ok", "token", None), ("ok", "balance", None)]
        assert all(s[2] >= 0 for s in found)
        assert "1002 38000.50" in found[1][4]
        assert emulator.stats()["token_calls"] == 1

    def test_the_active_config_and_a_customer_on_the_fallback_password(
        self, run: Run, tmp_path: Path, emulator: EmulatorServer
    ) -> None:
        run("haier", "configure", "emu", "--file", write(tmp_path, config_document(emulator.url)))
        found = steps(run("haier", "check", "--customer", CUSTOMER_2).output)
        assert found[1][0] == "ok" and "1001 -1520.75" in found[1][4]

    def test_a_failing_balance_step_says_its_code_and_exits_1(
        self, run: Run, tmp_path: Path, emulator: EmulatorServer
    ) -> None:
        run("haier", "configure", "emu", "--file", write(tmp_path, config_document(emulator.url)))
        emulator.fault("503")
        emulator.echo.mode = "balance"  # and the upstream echoes what it was sent
        result = run("haier", "check", "emu", ok=False)
        assert result.exit_code == 1
        token, balance = steps(result.output)
        assert token[0] == "ok"
        assert (balance[0], balance[3]) == ("FAIL", "SERVICE_UNAVAILABLE")
        assert not re.search(r"(?i)bearer\s+(?!\*\*\*)\S{6,}", result.output)
        for value in emulator.issued_tokens():
            assert value not in result.output

    def test_refused_credentials_stop_at_the_token_step(
        self, run: Run, tmp_path: Path, emulator: EmulatorServer
    ) -> None:
        wrong = config_document(emulator.url, client_secret="not-the-secret-123")
        run("haier", "configure", "emu", "--file", write(tmp_path, wrong))
        result = run("haier", "check", ok=False)
        assert [(s[0], s[1], s[3]) for s in steps(result.output)] == [
            ("FAIL", "token", "INVALID_CREDENTIALS")
        ]
        assert "not-the-secret-123" not in result.output


class TestSecretsRotate:
    def test_rotate_then_retire_the_old_key(
        self, run: Run, instance: Instance, tmp_path: Path, emulator: EmulatorServer, sqlite_engine: Engine
    ) -> None:
        run("haier", "configure", "emu", "--file", write(tmp_path, config_document(emulator.url)))
        run("customer", CUSTOMER)
        assert "1002\t38000.50" in run("balance", CUSTOMER).output  # a token is stored, sealed with A
        token = SqlTokenStore(sqlite_engine, FernetSecretBox([KEY_A])).current("emu")
        assert token is not None

        instance.keys(KEY_B, KEY_A)
        assert run("haier", "show", "emu").output  # B first, A still opens everything
        assert run("secrets", "rotate").output.strip() == (
            "configs: 1 re-encrypted, tokens: 1 re-encrypted, webhooks: 0 re-encrypted, "
            "idempotent_answers: 0 re-encrypted"
        )

        instance.keys(KEY_B)
        assert json.loads(run("haier", "show", "emu").output)["client_secret"] == "set"
        assert SqlTokenStore(sqlite_engine, FernetSecretBox([KEY_B])).current("emu") == token
        assert [s[0] for s in steps(run("haier", "check", "emu").output)] == ["ok", "ok"]

        instance.keys(KEY_A)
        refused = run("haier", "show", "emu", ok=False)
        assert "a stored secret cannot be decrypted with the configured keys" in refused.output
        assert "Traceback" not in refused.output
