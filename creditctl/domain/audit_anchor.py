"""Anchors: the audit chain's head (and the hashes since the previous anchor) kept outside the database.

An anchor says "at `anchored_at` the chain's position `position` had hash `hash`", and lists the hash of
every position after `since` up to it. Someone who can rewrite the tables can rewrite an event and seal
the chain again from there, so that it holds together; it no longer ends in a hash that was anchored, and
the first listed hash that differs names the first event that differs (the hashes of a re-sealed chain
agree with its own payloads, so only hashes kept elsewhere can tell where it was changed)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Anchor:
    """The head `position`:`hash` at `anchored_at` (ISO, the database's time), and `hashes`: the hashes
    of positions since+1 .. position, in order (the last is `hash`)."""

    position: int
    hash: str
    anchored_at: str | None = None
    since: int | None = None
    hashes: tuple[str, ...] = ()

    def line(self) -> str:
        """One JSON line (sorted keys, no spaces): the file sink's line and the webhook's body."""
        return json.dumps(
            {
                "position": self.position,
                "hash": self.hash,
                "anchored_at": self.anchored_at,
                "since": self.since if self.since is not None else self.position - 1,
                "hashes": list(self.hashes) or [self.hash],
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    def listed(self) -> Iterator[tuple[int, str]]:
        """(position, hash) of every hash the anchor lists, the head's included."""
        since = self.position - len(self.hashes) if self.since is None else self.since
        yield from ((since + 1 + i, h) for i, h in enumerate(self.hashes))
        if not self.hashes:
            yield self.position, self.hash


def _hash(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value.lower()) <= HEX:
        raise ValueError(f"{what} is not 64 hex digits")
    return value.lower()


def parse_anchor(text: str) -> Anchor:
    """An anchor from a JSON line (ValueError naming what is wrong)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    position = data.get("position")
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        raise ValueError("position is not a positive whole number")
    digest = _hash(data.get("hash"), "hash")
    hashes = tuple(_hash(h, f"hashes[{i}]") for i, h in enumerate(data.get("hashes") or ()))
    since = data.get("since")
    if since is not None and (not isinstance(since, int) or since + len(hashes) != position):
        raise ValueError("since + the number of hashes is not the position")
    if hashes and hashes[-1] != digest:
        raise ValueError("the last of hashes is not the head's hash")
    at = data.get("anchored_at")
    return Anchor(position, digest, at if isinstance(at, str) else None, since, hashes)


def parse_anchors(lines: Iterable[str]) -> list[Anchor]:
    """Every anchor of a JSON-lines file, blank lines skipped (ValueError naming the line number)."""
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(parse_anchor(line))
        except ValueError as exc:
            raise ValueError(f"line {number}: {exc}") from None
    return out


@dataclass(frozen=True, slots=True)
class AnchoredHash:
    """What was anchored at one position: its hash, and when (and by which anchor's head)."""

    hash: str
    anchored_at: str | None
    head: int


class AnchorCheck:
    """Compares the chain, walked position by position from the first, with every hash the anchors list.

    `observe` returns what was anchored at a position whose hash differs, with the run of positions
    before it that no anchor listed (the change may sit among those: the report says so, not guesses)."""

    def __init__(self, anchors: Sequence[Anchor]) -> None:
        self.by_position: dict[int, AnchoredHash] = {}
        for anchor in anchors:
            for position, digest in anchor.listed():
                anchored = AnchoredHash(digest, anchor.anchored_at, anchor.position)
                self.by_position.setdefault(position, anchored)
        self.last = max(self.by_position, default=0)
        self._unlisted_from: int | None = None  # first unlisted position since the last listed one

    def observe(self, position: int, digest: str) -> tuple[AnchoredHash, tuple[int, int] | None] | None:
        """None when `position` was not anchored or its hash is the anchored one."""
        anchored = self.by_position.get(position)
        if anchored is None:
            if self._unlisted_from is None:
                self._unlisted_from = position
            return None
        if anchored.hash == digest:
            self._unlisted_from = None
            return None
        gap = None if self._unlisted_from is None else (self._unlisted_from, position - 1)
        return anchored, gap
