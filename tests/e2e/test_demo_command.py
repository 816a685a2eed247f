"""`creditctl demo` (what `./scripts/serve` runs each time) loaded again and again: the same accounts,
and exactly three active demo keys, the last ones printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.served import run

pytestmark = pytest.mark.e2e

DEMO_KEYS = ("demo-admin", "demo-orders", "demo-auditor", "demo-finance")


class TestDemo:
    def test_loading_the_demo_again_leaves_exactly_four_active_demo_keys(self, tmp_path: Path) -> None:
        assert run("db", "upgrade", cwd=tmp_path).returncode == 0
        outputs = []
        for _ in range(3):
            done = run("demo", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout)
        listing = run("keys", "list", cwd=tmp_path).stdout.splitlines()
        rows = [line.split("\t") for line in listing]
        active = sorted(name for _, name, _owner, _, _, state, _authority in rows if state == "active")
        assert active == sorted(DEMO_KEYS)
        assert len(rows) == 12  # the earlier ones are kept, revoked
        accounts = [sorted(x for x in out.splitlines() if x.startswith("account ")) for out in outputs]
        assert accounts[0] and accounts[0] == accounts[1] == accounts[2]
        assert "earlier run" not in outputs[0]  # a fresh database: nothing was revoked, nothing to say
        for later in outputs[1:]:
            assert "(the demo keys printed by an earlier run no longer work: 4 revoked)" in later

    def test_the_keys_printed_by_the_last_demo_are_the_active_ones(self, tmp_path: Path) -> None:
        from adapters.bootstrap import bootstrap, load_settings
        from creditctl.services.api_keys import authenticate

        assert run("db", "upgrade", cwd=tmp_path).returncode == 0
        first = run("demo", cwd=tmp_path).stdout
        last = run("demo", cwd=tmp_path).stdout
        context = bootstrap(load_settings({"CREDITCTL_INSTANCE_PATH": str(tmp_path / "instance")}))

        def secrets(out: str) -> list[str]:
            return [line.split()[-1] for line in out.splitlines() if "key (shown once)" in line]

        assert len(secrets(last)) == 4
        for secret in secrets(last):
            assert authenticate(secret, uow=context.uow()).name in DEMO_KEYS
        for secret in secrets(first):
            with pytest.raises(Exception, match="not valid"):
                authenticate(secret, uow=context.uow())
