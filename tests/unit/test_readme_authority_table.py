"""The README's authority table is the code's: a reader is never told a rule the service does not enforce."""

from __future__ import annotations

from pathlib import Path

import pytest

from creditctl.domain.authority import AUTHORITY, Act, Scope

pytestmark = pytest.mark.unit
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_lists_every_act_with_the_codes_roles_scope_and_second_owner() -> None:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and "(`" in cells[0]:
            code = cells[0].rsplit("(`", 1)[1].rstrip("`)")
            rows[code] = cells
    assert set(rows) == {a.value for a in Act}, "README authority table: acts differ from the code"
    for act, rule in AUTHORITY.items():
        _, roles, scope, second, note = rows[act.value]
        assert roles == ", ".join(r.value for r in rule.roles), act
        assert scope == ("all customers only" if rule.scope is Scope.GLOBAL else "its customers"), act
        assert second == ("yes" if rule.second_owner else "no"), act
        assert note == rule.note, act
