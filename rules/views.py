"""A read-only view of some keys of a mapping: the trace's `reads`/`params` without copying values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class KeysView(Mapping[str, Any]):
    """`source` restricted to `keys` (absent keys read as None). Cheap to build: one per rule per evaluation.

    The evaluation takes a private snapshot of the facts, so a view stays correct after the caller
    changes its own facts dict.
    """

    __slots__ = ("_keys", "_source")

    def __init__(self, source: Mapping[str, Any], keys: tuple[str, ...]) -> None:
        self._source = source
        self._keys = keys

    def __getitem__(self, key: str) -> Any:
        if key in self._keys:
            return self._source.get(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return repr(dict(self))
