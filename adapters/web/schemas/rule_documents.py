"""A rule document in requests (a draft's, a backtest's), as the document states it: its members, each
rule's members with their patterns and outcomes, and the known params with their bounds, from the very
constants the rule language checks them with (rules.parser, rules.rule, rules.params).

What a schema of OpenAPI 3.0 cannot say is said in words: a condition's value has the type of the fact it
is compared with and a `param` names one the document declares (a condition is a small typed language:
the README's catalogue, and POST /v1/rule-sets/{id}/validate checks one with pointers), rule ids are
unique, a message names facts and declared params only, and a param of the document's own has a name that
is no fact's."""

from __future__ import annotations

from typing import Any

from adapters.web.schemas.params import PARAM_PROPERTIES
from adapters.web.schemas.text import NOT_BLANK
from rules import FACTS, Outcome
from rules.conditions import OPS
from rules.parser import MAX_RULES
from rules.scope import MAX_DEPTH, MAX_NODES

_FACT_NAMES = ", ".join(FACTS)
CONDITION = {
    "type": "object",
    "description": "A condition: exactly one of {all: [conditions]}, {any: [conditions]}, {not: condition} "
    f"or a comparison {{fact, op, value}}: fact one of {_FACT_NAMES}; op one of {', '.join(OPS)}; value a "
    "literal of the fact's type (money and ratios as decimal strings, integers, text, an enum's value), "
    '{"fact": ...} or {"param": ...} of a compatible type (money never against a count), or {"add"|"sub"|'
    '"mul": [values]}; a list of literals for in and not_in; no value for missing and present. At most '
    f"{MAX_DEPTH} levels deep and {MAX_NODES} nodes in one rule. The README's catalogue has the facts and "
    "their types; POST /v1/rule-sets/{id}/validate reports a draft's problems by JSON pointer",
}
RULE_ID = r"^[a-z][a-z0-9_]{0,63}$"
REASON = r"^[A-Z][A-Z0-9_]{1,63}$"
ACTION = r"^notify:[a-z][a-z0-9_.]*$"
# Text, with {{ and }} for braces, and placeholders {name}: each a fact or a param the document declares.
MESSAGE = r"^(?:[^{}\x00]|\{\{|\}\}|\{[a-z][a-z0-9_.]*\})*$"
RULE = {
    "type": "object",
    "required": ["id", "when", "outcome", "reason"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": RULE_ID, "description": "Unique in the document"},
        "description": {"type": "string"},
        "when": CONDITION,
        "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
        "reason": {"type": "string", "pattern": REASON, "example": "INSUFFICIENT_BALANCE"},
        "message": {
            "type": "string",
            "pattern": MESSAGE,
            "description": "Shown when the rule matches; each {placeholder} names a fact or a param the "
            "document declares ({{ and }} for braces)",
        },
        "actions": {"type": "array", "items": {"type": "string", "pattern": ACTION}},
        "enabled": {"type": "boolean"},
    },
}
# A param of the document's own: an integer (a count, seconds), or a decimal string (money). The language
# takes any size; the document states the contract's ceiling, as for money, so that every integer a request
# carries has a documented maximum (tests/api/test_param_bounds_api.py).
OWN_PARAM_CEILING = 10**12
OWN_PARAM = {
    "anyOf": [
        {"type": "integer", "minimum": -OWN_PARAM_CEILING, "maximum": OWN_PARAM_CEILING},
        {"type": "string", "pattern": r"^[+-]?[0-9]+(?:\.[0-9]+)?$", "format": "decimal"},
    ]
}


def rule_document(description: str) -> dict[str, Any]:
    """The schema of a rule document, for a request member."""
    return {
        "type": "object",
        "description": description,
        "required": ["name", "rules"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": NOT_BLANK, "description": "Not blank"},
            "params": {
                "type": "object",
                "description": "Values of the params the rules read: the known ones within their bounds, "
                "and params of the document's own (a name matching ^[a-z][a-z0-9_]{0,63}$ that is no "
                "fact's: an integer of at most ±1,000,000,000,000, or a decimal string for money)",
                "properties": PARAM_PROPERTIES,
                "additionalProperties": OWN_PARAM,
            },
            "auto_unfreeze": {
                **CONDITION,
                "nullable": True,
                "description": "Lifts a freeze the rules made when it holds. " + CONDITION["description"],
            },
            "rules": {"type": "array", "maxItems": MAX_RULES, "items": RULE},
        },
    }
