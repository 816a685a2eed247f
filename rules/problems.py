"""Validation problems: every one found, each with a JSON pointer to the node an editor should fix."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rule document; `pointer` is an RFC 6901 pointer ("" is the root)."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'}: {self.message}"


class RuleSetInvalid(ValueError):
    """A rule document was refused; `errors` lists all problems, not just the first."""

    def __init__(self, errors: list[RuleProblem]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {problem}" for problem in self.errors)
        super().__init__(f"rule set invalid ({len(self.errors)} problem(s)):\n{lines}")


def child(pointer: str, key: str | int) -> str:
    """Extend a JSON pointer by one key, escaping "~" and "/" as RFC 6901 says."""
    return f"{pointer}/{str(key).replace('~', '~0').replace('/', '~1')}"


def find_floats(node: Any) -> Iterator[str]:
    """Yield the pointer of every float: binary floats cannot hold money exactly, so none are allowed.

    Iterative, so that an absurdly deep document is reported rather than overflowing the stack.
    """
    stack: list[tuple[str, Any]] = [("", node)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, float):
            yield pointer
        elif isinstance(value, dict):
            stack.extend((child(pointer, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list | tuple):
            stack.extend((child(pointer, i), item) for i, item in reversed(list(enumerate(value))))


FLOAT_MESSAGE = 'floats are not allowed; write money as a decimal string such as "12.50"'


class Problems:
    """Collects problems while validation carries on; a float is reported once, by `find_floats`."""

    def __init__(self, document: Any) -> None:
        self._floats = set(find_floats(document))
        self.found = [RuleProblem(pointer, FLOAT_MESSAGE) for pointer in sorted(self._floats)]

    def add(self, pointer: str, message: str) -> None:
        """Record a problem unless the node is a float, already reported as such."""
        if pointer not in self._floats:
            self.found.append(RuleProblem(pointer, message))

    def raise_if_any(self) -> None:
        """Refuse the document if anything was found."""
        if self.found:
            raise RuleSetInvalid(self.found)
