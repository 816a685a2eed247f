"""JSON pretty-printed the way json.dumps(indent=2) does, noting the line each JSON pointer starts on,
so that a validation problem can be shown at its place in the textarea."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def numbered_json(document: Any) -> tuple[str, dict[str, int]]:
    """The text (same as json.dumps(document, indent=2, ensure_ascii=False)) and {pointer: line (1-based)}."""
    lines: list[str] = []
    where: dict[str, int] = {}
    _emit(document, "", "", "", lines, where)
    return "\n".join(lines), where


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _emit(
    value: Any, pointer: str, indent: str, prefix: str, lines: list[str], where: dict[str, int]
) -> None:
    where[pointer] = len(lines) + 1
    inner = indent + "  "
    if isinstance(value, dict) and value:
        lines.append(prefix + "{")
        for i, (k, v) in enumerate(value.items()):
            _emit(
                v,
                f"{pointer}/{_escape(str(k))}",
                inner,
                inner + json.dumps(k, ensure_ascii=False) + ": ",
                lines,
                where,
            )
            if i < len(value) - 1:
                lines[-1] += ","
        lines.append(indent + "}")
    elif isinstance(value, list) and value:
        lines.append(prefix + "[")
        for i, v in enumerate(value):
            _emit(v, f"{pointer}/{i}", inner, inner, lines, where)
            if i < len(value) - 1:
                lines[-1] += ","
        lines.append(indent + "]")
    elif isinstance(value, Decimal):
        lines.append(prefix + str(value))  # exact, as the service reads it (never through float)
    else:
        lines.append(prefix + json.dumps(value, ensure_ascii=False))
