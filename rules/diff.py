"""What changed between two rule documents: rules and params added, removed, changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def diff_documents(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Compare two (canonical) documents; rules are matched by id, params by name."""
    old_rules = _by_id(before.get("rules"))
    new_rules = _by_id(after.get("rules"))
    old_params = dict(before.get("params") or {})
    new_params = dict(after.get("params") or {})
    return {
        "rules": {
            "added": [new_rules[i] for i in new_rules if i not in old_rules],
            "removed": [old_rules[i] for i in old_rules if i not in new_rules],
            "changed": [
                {"id": i, "before": old_rules[i], "after": new_rules[i]}
                for i in old_rules
                if i in new_rules and old_rules[i] != new_rules[i]
            ],
        },
        "params": {
            "added": {k: v for k, v in new_params.items() if k not in old_params},
            "removed": {k: v for k, v in old_params.items() if k not in new_params},
            "changed": {
                k: {"before": old_params[k], "after": new_params[k]}
                for k in old_params
                if k in new_params and str(old_params[k]) != str(new_params[k])
            },
        },
        "auto_unfreeze_changed": before.get("auto_unfreeze") != after.get("auto_unfreeze"),
    }


def _by_id(rules: Any) -> dict[str, Any]:
    if not isinstance(rules, list):
        return {}
    return {str(r.get("id")): r for r in rules if isinstance(r, dict)}
