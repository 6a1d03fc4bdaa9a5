"""The stack's trade-off as a self-contained SVG: miss rate on harmful prompts against over-refusal.

Every configuration of layer thresholds is a dot (``circle.point``), with whiskers where its rates
carry intervals; the Pareto front (`refute.stats.pareto_front`: no other configuration misses less
without refusing more) is a connected line through its dots, and the configured stack is a
diamond (``path.chosen``). Every mark has a ``<title>`` tooltip with its numbers. Written by hand
in the style of `refute.interp._svg` (whose text and frame helpers it uses), so a report stays one
light file; labels come from user YAML and are escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from refute.errors import ConfigError
from refute.interp._svg import _svg, _text
from refute.stats import pareto_front
from refute.stats._common import check_real

_BLUE, _GREY, _VERMILLION = "#0072B2", "#999999", "#D55E00"  # Okabe-Ito, as the report's plots
_KEYS = frozenset({"miss", "over_refusal", "miss_low", "miss_high", "over_low", "over_high", "label"})
_SCALES = (0.004, 0.01, 0.02, 0.04, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)  # axis ends: quarters are round


@dataclass(frozen=True, slots=True)
class _Point:
    label: str
    miss: float
    over: float
    miss_bar: tuple[float, float] | None
    over_bar: tuple[float, float] | None


def pareto_svg(
    points: Sequence[Mapping[str, Any] | Sequence[float]],
    *,
    labels: Sequence[str] | None = None,
    chosen: int | None = None,
    title: str = "Stack miss rate against over-refusal",
    x_label: str = "over-refusal on benign look-alikes",
    y_label: str = "stack miss rate on harmful prompts",
) -> str:
    """One ``<svg>`` element: each configuration a dot, the Pareto front a line, ``chosen`` a diamond.

    Args:
        points: one per configuration, either a ``(miss, over_refusal)`` pair or a mapping with keys
            ``miss`` and ``over_refusal`` and optionally ``miss_low``/``miss_high`` and
            ``over_low``/``over_high`` (an interval: both ends or neither) and ``label``. Rates lie in
            [0, 1].
        labels: a label per point, overriding the mappings' ``label`` (default ``#i``).
        chosen: the index of the configured stack, or None.
        title, x_label, y_label: text of the figure (escaped).

    Each axis runs from 0 to a round value just above the largest rate or interval end (at most 1).
    Dots on the front and the chosen one carry their label as text; every dot has a tooltip.
    """
    pts = _points(points, labels)
    if chosen is not None and (isinstance(chosen, bool) or not isinstance(chosen, int)
                               or not 0 <= chosen < len(pts)):
        raise ConfigError(f"chosen must be the index of one of the {len(pts)} points, got {chosen!r}")
    front = pareto_front([(p.miss, p.over) for p in pts])
    on_front = set(front)

    left, top, pw, ph, right, bottom = 64.0, 44.0, 420.0, 300.0, 170.0, 52.0
    width, height = left + pw + right, top + ph + bottom
    x_hi = _scale(max(max((p.over, *(p.over_bar or ()))) for p in pts))
    y_hi = _scale(max(max((p.miss, *(p.miss_bar or ()))) for p in pts))

    def x(v: float) -> float:
        return left + v / x_hi * pw

    def y(v: float) -> float:
        return top + ph - v / y_hi * ph

    body: list[str] = []
    for k in range(5):
        tx, ty = x_hi * k / 4, y_hi * k / 4
        body.append(f'<line x1="{x(tx):.1f}" y1="{top:.1f}" x2="{x(tx):.1f}" y2="{top + ph:.1f}" stroke="#e3e3e3"/>')
        body.append(f'<line x1="{left:.1f}" y1="{y(ty):.1f}" x2="{left + pw:.1f}" y2="{y(ty):.1f}" stroke="#e3e3e3"/>')
        body.append(_text(x(tx), top + ph + 16, f"{tx:g}", anchor="middle", fill="#555"))
        body.append(_text(left - 6, y(ty) + 4, f"{ty:g}", anchor="end", fill="#555"))
    body.append(f'<rect x="{left:.1f}" y="{top:.1f}" width="{pw:.1f}" height="{ph:.1f}" fill="none" stroke="#bbb"/>')
    body.append(_text(left + pw / 2, top + ph + 38, x_label, anchor="middle", fill="#555"))
    body.append(_text(16, top + ph / 2, y_label, anchor="middle", rotate=-90, fill="#555"))

    if len(front) > 1:
        line = " ".join(f"{x(pts[i].over):.1f},{y(pts[i].miss):.1f}" for i in front)
        body.append(f'<polyline class="front" points="{line}" fill="none" stroke="{_BLUE}" stroke-width="1.5">'
                    f"<title>Pareto front: {len(front)} configurations</title></polyline>")
    for i, p in enumerate(pts):
        colour = _BLUE if i in on_front else _GREY
        tip = f"{p.label}: miss {_with_bar(p.miss, p.miss_bar)}, over-refusal {_with_bar(p.over, p.over_bar)}"
        if i in on_front:
            tip += " (Pareto front)"
        if i == chosen:
            tip += " (chosen)"
        bars = ""
        if p.miss_bar is not None:
            bars += (f'<line class="bar" x1="{x(p.over):.1f}" y1="{y(p.miss_bar[0]):.1f}" x2="{x(p.over):.1f}" '
                     f'y2="{y(p.miss_bar[1]):.1f}" stroke="{colour}" stroke-width="1"/>')
        if p.over_bar is not None:
            bars += (f'<line class="bar" x1="{x(p.over_bar[0]):.1f}" y1="{y(p.miss):.1f}" x2="{x(p.over_bar[1]):.1f}" '
                     f'y2="{y(p.miss):.1f}" stroke="{colour}" stroke-width="1"/>')
        body.append(f'<g class="mark"><title>{escape(tip)}</title>{bars}<circle class="point" cx="{x(p.over):.1f}" '
                    f'cy="{y(p.miss):.1f}" r="4" fill="{colour}" fill-opacity="0.85"/></g>')
        if i in on_front or i == chosen:
            text = f"{p.label} (chosen)" if i == chosen else p.label
            body.append(_text(x(p.over) + 7, y(p.miss) - 6, _clip(text, 28), fill="#333"))
    if chosen is not None:
        cx, cy = x(pts[chosen].over), y(pts[chosen].miss)
        body.append(f'<path class="chosen" d="{_diamond(cx, cy, 9)}" fill="none" stroke="{_VERMILLION}" '
                    f'stroke-width="2"><title>{escape(pts[chosen].label)} (chosen)</title></path>')
    body += _legend(left + pw + 16, top + 8, chosen is not None)
    return _svg(width, height, title, body)


def _points(points: Sequence[Mapping[str, Any] | Sequence[float]], labels: Sequence[str] | None) -> list[_Point]:
    rows = list(points)
    if not rows:
        raise ConfigError("pareto_svg needs at least one point (miss rate, over-refusal)")
    if labels is not None and (isinstance(labels, str) or len(labels) != len(rows)):
        raise ConfigError(f"labels must give one label per point: {len(rows)} points, "
                          f"{1 if isinstance(labels, str) else len(labels)} labels")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            unknown = sorted(set(map(str, row)) - _KEYS)
            if unknown or "miss" not in row or "over_refusal" not in row:
                raise ConfigError(f"point {i}: needs keys miss and over_refusal, may have "
                                  f"{', '.join(sorted(_KEYS - {'miss', 'over_refusal'}))}; "
                                  f"got {', '.join(map(str, row)) or 'none'}")
            miss, over = _rate(i, "miss", row["miss"]), _rate(i, "over_refusal", row["over_refusal"])
            miss_bar = _bar(i, row, "miss_low", "miss_high")
            over_bar = _bar(i, row, "over_low", "over_high")
            label = str(row.get("label", f"#{i}"))
        elif not isinstance(row, (str, bytes)) and hasattr(row, "__len__") and len(row) == 2:
            miss, over = _rate(i, "miss", row[0]), _rate(i, "over_refusal", row[1])
            miss_bar = over_bar = None
            label = f"#{i}"
        else:
            raise ConfigError(f"point {i} must be a (miss, over_refusal) pair or a mapping, got {row!r}")
        out.append(_Point(str(labels[i]) if labels is not None else label, miss, over, miss_bar, over_bar))
    return out


def _rate(i: int, key: str, value: Any) -> float:
    problem = ConfigError(f"point {i}: {key} must be a rate in [0, 1], got {value!r}")
    try:
        v = check_real(key, value)
    except ConfigError:
        raise problem from None
    if not 0.0 <= v <= 1.0:
        raise problem
    return v


def _bar(i: int, row: Mapping[str, Any], low_key: str, high_key: str) -> tuple[float, float] | None:
    if low_key not in row and high_key not in row:
        return None
    if low_key not in row or high_key not in row:
        raise ConfigError(f"point {i}: an interval needs both {low_key} and {high_key}")
    low, high = _rate(i, low_key, row[low_key]), _rate(i, high_key, row[high_key])
    if low > high:
        raise ConfigError(f"point {i}: {low_key} ({low:g}) is above {high_key} ({high:g})")
    return low, high


def _scale(largest: float) -> float:
    """The axis end: the first round value at least 5% above ``largest`` (1 for all-zero data)."""
    if largest <= 0.0:
        return 1.0
    return next((s for s in _SCALES if s >= largest * 1.05), 1.0)


def _with_bar(v: float, bar: tuple[float, float] | None) -> str:
    return f"{v:.3f}" if bar is None else f"{v:.3f} [{bar[0]:.3f}, {bar[1]:.3f}]"


def _diamond(cx: float, cy: float, r: float) -> str:
    return f"M{cx:.1f},{cy - r:.1f} L{cx + r:.1f},{cy:.1f} L{cx:.1f},{cy + r:.1f} L{cx - r:.1f},{cy:.1f} Z"


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _legend(x0: float, y0: float, with_chosen: bool) -> list[str]:
    """Key to the marks, drawn without circles so that every circle is a configuration."""
    parts = [f'<rect x="{x0:.1f}" y="{y0 - 4:.1f}" width="8" height="8" rx="4" fill="{_GREY}"/>',
             _text(x0 + 14, y0 + 4, "configuration", fill="#333"),
             f'<line x1="{x0 - 2:.1f}" y1="{y0 + 18:.1f}" x2="{x0 + 10:.1f}" y2="{y0 + 18:.1f}" stroke="{_BLUE}" '
             'stroke-width="1.5"/>',
             _text(x0 + 14, y0 + 22, "Pareto front", fill="#333")]
    if with_chosen:
        parts += [f'<path d="{_diamond(x0 + 4, y0 + 36, 6)}" fill="none" stroke="{_VERMILLION}" stroke-width="2"/>',
                  _text(x0 + 14, y0 + 40, "configured stack", fill="#333")]
    return parts
