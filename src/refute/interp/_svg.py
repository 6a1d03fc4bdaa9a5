"""Self-contained SVG figures for interp results, written by hand (no matplotlib).

* `line_plot`: one point per label with its interval as a whisker and a shaded band (a layer sweep's
  AUROC by site);
* `heatmap`: one rect per (row, column) cell on a diverging colour scale centred at ``centre``, with
  axis labels and a colour bar (an activation-patching sweep over layers x positions).

Every mark has a ``<title>`` tooltip with its numbers; the output is one ``<svg>`` element that
parses as XML and can be written to a file or inlined in an HTML report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

from refute.interp._errors import InterpError

__all__ = ["heatmap", "line_plot", "write_svg"]

_FONT = "system-ui, -apple-system, Segoe UI, sans-serif"
_BLUE, _WHITE, _RED = (33, 102, 172), (247, 247, 247), (178, 24, 43)
_LINE = "#0072B2"


def _text(x: float, y: float, s: str, *, anchor: str = "start", size: int = 11, fill: str = "#222",
          rotate: float | None = None, weight: str = "normal") -> str:
    turn = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate is not None else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{turn}>{escape(s)}</text>')


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" aria-label="{escape(title)}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
            f'font-family="{_FONT}"><title>{escape(title)}</title>'
            f'{_text(0, 16, title, size=13, weight="600")}{"".join(body)}</svg>')


def _finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def line_plot(labels: Sequence[str], values: Sequence[float], lows: Sequence[float], highs: Sequence[float], *,
              title: str, y_label: str, domain: tuple[float, float] = (0.0, 1.0),
              reference: float | None = 0.5) -> str:
    """Estimates with 95% intervals along a categorical x axis; one ``circle.point`` per label."""
    if not (len(labels) == len(values) == len(lows) == len(highs)) or not labels:
        raise InterpError("line_plot needs one value, low and high per label, and at least one label")
    left, right, top, bottom = 56, 16, 32, 90
    step = max(28.0, min(60.0, 640.0 / len(labels)))
    pw, ph = step * len(labels), 200.0
    width, height = left + pw + right, top + ph + bottom
    lo, hi = domain

    def y(v: float) -> float:
        return top + ph - (min(max(v, lo), hi) - lo) / (hi - lo) * ph

    def x(i: int) -> float:
        return left + step * (i + 0.5)

    body = []
    for k in range(5):
        t = lo + (hi - lo) * k / 4
        body.append(f'<line x1="{left}" y1="{y(t):.1f}" x2="{left + pw:.1f}" y2="{y(t):.1f}" stroke="#e3e3e3"/>')
        body.append(_text(left - 6, y(t) + 4, f"{t:g}", anchor="end", fill="#555"))
    if reference is not None:
        body.append(f'<line x1="{left}" y1="{y(reference):.1f}" x2="{left + pw:.1f}" y2="{y(reference):.1f}" '
                    f'stroke="#777" stroke-dasharray="3 3"><title>chance {reference:g}</title></line>')
    ok = [i for i in range(len(labels)) if _finite(lows[i]) and _finite(highs[i])]
    if len(ok) > 1:
        band = [f"{x(i):.1f},{y(highs[i]):.1f}" for i in ok] + [f"{x(i):.1f},{y(lows[i]):.1f}" for i in reversed(ok)]
        body.append(f'<polygon points="{" ".join(band)}" fill="{_LINE}" fill-opacity="0.15" stroke="none"/>')
    pts = [i for i in range(len(labels)) if _finite(values[i])]
    if len(pts) > 1:
        path = " ".join(f"{x(i):.1f},{y(values[i]):.1f}" for i in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="{_LINE}" stroke-width="1.5"/>')
    for i, label in enumerate(labels):
        body.append(_text(x(i), top + ph + 12, label, anchor="end", rotate=-45, fill="#333"))
        if not _finite(values[i]):
            continue
        tip = escape(f"{label}: {values[i]:.3f} [{lows[i]:.3f}, {highs[i]:.3f}]")
        whisker = (f'<line x1="{x(i):.1f}" y1="{y(lows[i]):.1f}" x2="{x(i):.1f}" y2="{y(highs[i]):.1f}" '
                   f'stroke="{_LINE}" stroke-width="1.5"/>' if i in ok else "")
        body.append(f'<g class="mark"><title>{tip}</title>{whisker}'
                    f'<circle class="point" cx="{x(i):.1f}" cy="{y(values[i]):.1f}" r="4" fill="{_LINE}"/></g>')
    body.append(_text(14, top + ph / 2, y_label, anchor="middle", rotate=-90, fill="#555"))
    return _svg(width, height, title, body)


def _colour(t: float) -> str:
    """``t`` in [-1, 1]: blue (low) through near-white (centre) to red (high)."""
    if not math.isfinite(t):
        return "#cccccc"
    t = max(-1.0, min(1.0, t))
    a, b = (_WHITE, _RED) if t >= 0 else (_WHITE, _BLUE)
    u = abs(t)
    r, g, bl = (round(a[k] + (b[k] - a[k]) * u) for k in range(3))
    return f"#{r:02x}{g:02x}{bl:02x}"


def heatmap(values: Sequence[Sequence[float]], row_labels: Sequence[str], col_labels: Sequence[str], *,
            title: str, row_title: str, col_title: str, value_label: str, centre: float = 0.0) -> str:
    """One ``rect.cell`` per value, coloured on a scale symmetric around ``centre``; a colour bar."""
    n_rows, n_cols = len(row_labels), len(col_labels)
    if n_rows == 0 or n_cols == 0 or len(values) != n_rows or any(len(r) != n_cols for r in values):
        raise InterpError(f"heatmap needs a {n_rows} x {n_cols} grid of values matching its labels")
    cell_w, cell_h = max(22.0, min(48.0, 640.0 / n_cols)), max(16.0, min(32.0, 420.0 / n_rows))
    label_w = 8 + 7 * max(len(s) for s in row_labels)
    left, top = max(60, label_w + 24), 32
    pw, ph = cell_w * n_cols, cell_h * n_rows
    bottom = 24 + 6.5 * min(24, max(len(s) for s in col_labels)) + 24
    width, height = left + pw + 110, top + ph + bottom
    finite = [float(v) - centre for row in values for v in row if _finite(float(v))]
    span = max((abs(v) for v in finite), default=1.0) or 1.0
    body = []
    for i, row in enumerate(values):  # row 0 at the bottom, like a layer axis
        yy = top + ph - (i + 1) * cell_h
        for j, v in enumerate(row):
            v = float(v)
            tip = escape(f"{row_labels[i]} x {col_labels[j]}: {v:.3f}")
            body.append(f'<rect class="cell" x="{left + j * cell_w:.1f}" y="{yy:.1f}" width="{cell_w:.1f}" '
                        f'height="{cell_h:.1f}" fill="{_colour((v - centre) / span)}" stroke="#fff" '
                        f'stroke-width="0.5"><title>{tip}</title></rect>')
        body.append(_text(left - 6, yy + cell_h / 2 + 4, row_labels[i], anchor="end", fill="#333"))
    for j, label in enumerate(col_labels):
        xx = left + (j + 0.5) * cell_w
        body.append(_text(xx, top + ph + 12, label[:24], anchor="end", rotate=-45, fill="#333"))
    body.append(_text(12, top + ph / 2, row_title, anchor="middle", rotate=-90, fill="#555"))
    body.append(_text(left + pw / 2, height - 6, col_title, anchor="middle", fill="#555"))
    # colour bar: 20 steps from centre - span (bottom) to centre + span (top)
    bx, steps = left + pw + 20, 20
    for k in range(steps):
        t = -1 + 2 * (k + 0.5) / steps
        yy = top + ph - (k + 1) * ph / steps
        body.append(f'<rect class="scale" x="{bx:.1f}" y="{yy:.1f}" width="12" height="{ph / steps + 0.5:.1f}" '
                    f'fill="{_colour(t)}"/>')
    for frac, v in ((0.0, centre - span), (0.5, centre), (1.0, centre + span)):
        body.append(_text(bx + 16, top + ph - frac * ph + 4, f"{v:.3g}", fill="#555"))
    body.append(_text(bx + 6, top - 8, value_label, anchor="middle", fill="#555"))
    return _svg(width, height, title, body)


def write_svg(svg: str, path: str | Path) -> Path:
    """Write ``svg`` to ``path``; only ``.svg`` is supported (no raster backend is a dependency)."""
    path = Path(path)
    if path.suffix.lower() != ".svg":
        raise InterpError(f"{path}: plots are written as SVG only; name the file with .svg (a raster "
                          f"format such as {path.suffix or 'this'} would need matplotlib, which refute does not use)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg, encoding="utf-8")
    return path
