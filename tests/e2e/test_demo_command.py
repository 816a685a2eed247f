"""`creditctl demo` (what `./scripts/serve` runs each time) loaded again and again: the same accounts, the
keys a reader copied the first time still working (and said so), new ones only on asking (--new-keys), and
a key it revoked refused with a 401 that says it was revoked."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditctl.domain.errors import RevokedKey
from tests.e2e.served import run

pytestmark = pytest.mark.e2e

DEMO_KEYS = ("demo-admin", "demo-orders", "demo-auditor", "demo-finance")


def secrets(out: str) -> dict[str, str]:
    """The keys a demo run printed, by role."""
    return {line.split()[0]: line.split()[-1] for line in out.splitlines() if "key (shown once)" in line}


def active_demo_keys(folder: Path) -> list[str]:
    rows = [line.split("\t") for line in run("keys", "list", cwd=folder).stdout.splitlines()]
    return sorted(name for _, name, _owner, _, _, state, _authority in rows if state == "active")


class TestDemo:
    def test_loading_the_demo_again_keeps_the_keys_it_printed_first(self, tmp_path: Path) -> None:
        from adapters.bootstrap import bootstrap, load_settings
        from creditctl.services.api_keys import authenticate

        assert run("db", "upgrade", cwd=tmp_path).returncode == 0
        outputs = []
        for _ in range(3):
            done = run("demo", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout)
        first = secrets(outputs[0])
        assert sorted(first) == ["admin", "auditor", "finance", "orders"]
        assert "kept" not in outputs[0] and "earlier run" not in outputs[0]  # a fresh database
        for later in outputs[1:]:
            assert secrets(later) == {}  # nothing new minted, nothing revoked
            assert f"demo keys kept: {', '.join(DEMO_KEYS)}" in later
            assert "creditctl demo --new-keys" in later and "revoked" not in later
        accounts = [sorted(x for x in out.splitlines() if x.startswith("account ")) for out in outputs]
        assert accounts[0] and accounts[0] == accounts[1] == accounts[2]
        assert active_demo_keys(tmp_path) == sorted(DEMO_KEYS)
        context = bootstrap(load_settings({"CREDITCTL_INSTANCE_PATH": str(tmp_path / "instance")}))
        for role, secret in first.items():
            assert authenticate(secret, uow=context.uow()).name == f"demo-{role}"

    def test_new_keys_replaces_them_and_the_old_ones_say_they_were_revoked(self, tmp_path: Path) -> None:
        from adapters.bootstrap import bootstrap, load_settings
        from creditctl.services.api_keys import authenticate

        assert run("db", "upgrade", cwd=tmp_path).returncode == 0
        first = secrets(run("demo", cwd=tmp_path).stdout)
        renewed = run("demo", "--new-keys", cwd=tmp_path).stdout
        last = secrets(renewed)
        assert sorted(last) == sorted(first) and set(last.values()).isdisjoint(first.values())
        assert "(the demo keys printed by an earlier run no longer work: 4 revoked)" in renewed
        assert active_demo_keys(tmp_path) == sorted(DEMO_KEYS)
        context = bootstrap(load_settings({"CREDITCTL_INSTANCE_PATH": str(tmp_path / "instance")}))
        for role, secret in last.items():
            assert authenticate(secret, uow=context.uow()).name == f"demo-{role}"
        for role, secret in first.items():
            with pytest.raises(RevokedKey, match=f"'demo-{role}' .* was revoked at "):
                authenticate(secret, uow=context.uow())

    def test_a_demo_key_revoked_by_hand_is_made_again_the_others_kept(self, tmp_path: Path) -> None:
        assert run("db", "upgrade", cwd=tmp_path).returncode == 0
        run("demo", cwd=tmp_path)
        rows = [line.split("\t") for line in run("keys", "list", cwd=tmp_path).stdout.splitlines()]
        auditor = next(key_id for key_id, name, *_ in rows if name == "demo-auditor")
        assert run("keys", "revoke", auditor, cwd=tmp_path).returncode == 0
        again = run("demo", cwd=tmp_path).stdout
        assert sorted(secrets(again)) == ["auditor"]
        assert "demo keys kept: demo-admin, demo-orders, demo-finance" in again
        assert active_demo_keys(tmp_path) == sorted(DEMO_KEYS)
