"""Charts as inline SVG drawn on the server: no script, no library, readable without JavaScript.

Each chart is a plain description (bars with their values and titles) that the template draws; the
numbers in it are the report's, so the chart, the table beside it and the JSON/CSV links agree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

COLOURS = {"approve": "#2e7d32", "defer": "#f9a825", "block": "#c62828", "freeze": "#4527a0"}
WIDTH, HEIGHT, PAD = 640, 220, 36


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str
    title: str  # shown as the bar's tooltip and read by screen readers


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    rects: list[Rect]
    labels: list[Label]
    legend: list[tuple[str, str]]  # (colour, name)

    @property
    def has_data(self) -> bool:
        return any(r.h > 0 or r.w > 0 for r in self.rects)


def stacked_columns(
    title: str, columns: Sequence[tuple[str, dict[str, int]]], series: Sequence[str]
) -> Chart:
    """One column per label (a day), stacked by series (outcomes)."""
    top = max((sum(v.values()) for _, v in columns), default=0) or 1
    inner_h = HEIGHT - 2 * PAD
    step = (WIDTH - 2 * PAD) / max(len(columns), 1)
    rects, labels = [], [Label(PAD - 4, PAD, str(top), "end"), Label(PAD - 4, HEIGHT - PAD, "0", "end")]
    for i, (name, values) in enumerate(columns):
        x, y = PAD + i * step + step * 0.15, HEIGHT - PAD
        for s in series:
            h = inner_h * values.get(s, 0) / top
            if h:
                y -= h
                rects.append(Rect(x, y, step * 0.7, h, COLOURS.get(s, "#607d8b"), f"{name} {s}: {values[s]}"))
        if len(columns) <= 16 or i % max(len(columns) // 8, 1) == 0:
            labels.append(Label(x + step * 0.35, HEIGHT - PAD + 14, name[5:] if len(name) == 10 else name))
    return Chart(title, WIDTH, HEIGHT, rects, labels, [(COLOURS.get(s, "#607d8b"), s) for s in series])


def horizontal_bars(title: str, bars: Sequence[tuple[str, Decimal | float | int]], unit: str = "") -> Chart:
    """One bar per label (an account, an error code), longest first as given."""
    top = max((float(v) for _, v in bars), default=0.0) or 1.0  # not money: bar lengths in pixels
    row, left = 22, 190
    height = max(len(bars), 1) * row + 2 * PAD
    rects, labels = [], []
    for i, (name, value) in enumerate(bars):
        y = PAD + i * row
        w = (WIDTH - left - PAD - 90) * float(value) / top  # not money: pixels
        rects.append(Rect(left, y, w, row - 6, "#1565c0", f"{name}: {value}{unit}"))
        labels.append(Label(left - 6, y + row - 10, name, "end"))
        labels.append(Label(left + w + 6, y + row - 10, f"{value}{unit}", "start"))
    return Chart(title, WIDTH, height, rects, labels, [])
