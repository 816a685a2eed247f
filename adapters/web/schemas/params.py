"""Rule parameters in the OpenAPI document: each known param with its type, default and bounds, taken
from the catalogue (rules.param_catalogue) that the server checks them with, so the two cannot differ."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rules import KNOWN_PARAMS, FactType, ParamSpec

# Decimal strings from 0 up to each maximum the catalogue uses, with the places its type allows.
_DECIMAL_PATTERNS = {
    (FactType.MONEY, Decimal("1000000000000.00")): r"^(?:(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,2})?"
    r"|1000000000000(?:\.00?)?)$",
    (FactType.RATIO, Decimal(1)): r"^(?:0(?:\.[0-9]{1,4})?|1(?:\.0{1,4})?)$",
    (FactType.RATIO, Decimal(100)): r"^(?:(?:0|[1-9][0-9]?)(?:\.[0-9]{1,4})?|100(?:\.0{1,4})?)$",
}


def param_property(spec: ParamSpec) -> dict[str, Any]:
    """One param as a JSON Schema: an integer, or a decimal string, with minimum and maximum."""
    bounds = f"{spec.show(spec.minimum)} to {spec.show(spec.maximum)} {spec.unit}"
    if spec.type is FactType.INTEGER:
        return {
            "type": "integer",
            "minimum": _whole(spec.minimum),
            "maximum": _whole(spec.maximum),
            "default": int(spec.default),
            "description": f"{spec.description} From {bounds}.",
        }
    pattern = _DECIMAL_PATTERNS[(spec.type, spec.maximum)]  # a new maximum needs its pattern here
    return {
        "type": "string",
        "format": "decimal",
        "pattern": pattern,
        "default": spec.show(spec.default),
        # The value the string stands for (JSON Schema ignores these for a string; the pattern holds).
        "minimum": _whole(spec.minimum),
        "maximum": _whole(spec.maximum),
        "description": f"{spec.description} A decimal string from {bounds}, at most {spec.places} places.",
    }


def _whole(bound: Decimal) -> int:
    assert bound == bound.to_integral_value(), f"a bound of {bound} needs a number type here"
    return int(bound)


PARAM_PROPERTIES = {name: param_property(spec) for name, spec in KNOWN_PARAMS.items()}


def params_metadata(description: str, *, others: bool = False) -> dict[str, Any]:
    """metadata for a fields.Dict of params: the known ones and their bounds; `others`: a rule document
    may declare params of its own as well."""
    return {
        "type": "object",
        "description": f"{description} Bounds: the README's Parameter bounds table.",
        "properties": PARAM_PROPERTIES,
        "additionalProperties": others,
    }
