"""Interval plots as inline SVG, written by hand so a report is one light, self-contained file.

Every plot shows estimates with their intervals (a dot and a whisker), never a bare number: the
forest plot of measures with their thresholds, rates per category side by side for several
conditions, and the robustness gap beside its capability control. Colours are the Okabe-Ito
palette (readable with colour-blindness); every mark has a <title> tooltip with its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from refute.report._escape import html_text

__all__ = ["PALETTE", "Row", "interval_plot", "paired_plot"]

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#999999")
THRESHOLD_COLOUR = "#D55E00"
_ROW, _TOP, _BOTTOM, _LABEL, _NOTE = 24, 44, 40, 230, 150


@dataclass(frozen=True)
class Row:
    """One estimate: its label (rows with the same label share a band), series, interval."""

    label: str
    value: float
    low: float
    high: float
    series: str = ""
    threshold: float | None = None
    threshold_label: str = ""
    note: str | None = None  # text at the right; default "value [low, high]"
    bold: bool = False
    colour: str | None = None


def _x(v: float, domain: tuple[float, float], x0: float, width: float) -> float:
    lo, hi = domain
    return x0 + (min(max(v, lo), hi) - lo) / (hi - lo) * width


def _ticks(domain: tuple[float, float]) -> list[float]:
    lo, hi = domain
    span = hi - lo
    step = 0.25 if span <= 1.0 else 0.5 if span <= 3.0 else 1.0 if span <= 6.0 else math.ceil(span / 6)
    out, v = [], lo
    while v <= hi + 1e-9:
        out.append(round(v, 2))
        v += step
    return out


def _text(x: float, y: float, s: str, *, anchor: str = "start", size: int = 12, weight: str = "normal",
          fill: str = "#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'font-weight="{weight}" fill="{fill}">{html_text(s)}</text>')


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _panel(rows: Sequence[Row], *, x0: float, width: float, domain: tuple[float, float], top: float,
           colours: dict[str, str], zero: float | None, axis_label: str, reference: float | None = None,
           reference_label: str = "", bands: list[str] | None = None) -> tuple[list[str], float]:
    """Axis, grid and marks of one panel; returns the SVG parts and the panel's bottom.

    ``bands``: the row labels top to bottom (default: in the order of ``rows``); rows whose label
    is not among them are left out."""
    if bands is None:
        bands = list(dict.fromkeys(r.label for r in rows))
    rows = [r for r in rows if r.label in bands]
    series = list(dict.fromkeys(r.series for r in rows))
    height = len(bands) * _ROW
    parts: list[str] = []
    for t in _ticks(domain):
        x = _x(t, domain, x0, width)
        parts.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{top + height:.1f}" stroke="#e3e3e3"/>')
        parts.append(_text(x, top + height + 14, f"{t:g}", anchor="middle", size=11, fill="#555"))
    parts.append(_text(x0 + width / 2, top + height + 30, axis_label, anchor="middle", size=11, fill="#555"))
    if zero is not None:
        x = _x(zero, domain, x0, width)
        parts.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{top + height:.1f}" stroke="#777"/>')
    if reference is not None:
        x = _x(reference, domain, x0, width)
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4:.1f}" x2="{x:.1f}" y2="{top + height:.1f}" '
                     f'stroke="#333" stroke-dasharray="2 3"><title>{html_text(reference_label)}</title></line>')
        parts.append(_text(x, top - 7, reference_label, anchor="middle", size=10, fill="#333"))
    for b in range(len(bands)):
        if b % 2 == 1:
            parts.insert(0, f'<rect x="{x0:.1f}" y="{top + b * _ROW:.1f}" width="{width:.1f}" '
                         f'height="{_ROW}" fill="#f6f6f6"/>')
    for r in rows:
        b = bands.index(r.label)
        k = series.index(r.series)
        offset = (k - (len(series) - 1) / 2) * min(7.0, 16.0 / max(1, len(series)))
        y = top + b * _ROW + _ROW / 2 + offset
        colour = r.colour or colours.get(r.series, PALETTE[0])
        xl, xh, xv = (_x(v, domain, x0, width) for v in (r.low, r.high, r.value))
        tip = html_text(f"{r.label}{' · ' + r.series if r.series else ''}: {r.value:.3f} "
                     f"[{r.low:.3f}, {r.high:.3f}]")
        parts.append(f'<g class="mark"><title>{tip}</title>'
                     f'<line x1="{xl:.1f}" y1="{y:.1f}" x2="{xh:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="2"/>'
                     + "".join(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x:.1f}" y2="{y + 4:.1f}" '
                               f'stroke="{colour}" stroke-width="1.5"/>' for x in (xl, xh))
                     + f'<circle cx="{xv:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/></g>')
        if r.threshold is not None:
            xt = _x(r.threshold, domain, x0, width)
            yb = top + b * _ROW
            label = html_text(r.threshold_label or f"threshold {r.threshold:g}")
            parts.append(f'<g class="threshold"><title>{label}</title>'
                         f'<line x1="{xt:.1f}" y1="{yb + 2:.1f}" x2="{xt:.1f}" y2="{yb + _ROW - 2:.1f}" '
                         f'stroke="{THRESHOLD_COLOUR}" stroke-width="2" stroke-dasharray="3 2"/></g>')
    return parts, top + height


def _legend(series: Sequence[str], colours: dict[str, str], x: float, y: float) -> list[str]:
    parts, cx = [], x
    for s in series:
        if not s:
            continue
        parts.append(f'<circle cx="{cx + 5:.1f}" cy="{y - 4:.1f}" r="4" fill="{colours[s]}"/>')
        parts.append(_text(cx + 13, y, s, size=11))
        cx += 24 + 6.5 * len(s)
    return parts


def _svg(width: float, height: float, title: str, body: list[str], aria: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" '
            f'aria-label="{html_text(aria)}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
            f'height="{height:.0f}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">'
            f'<title>{html_text(aria)}</title>{_text(0, 16, title, size=13, weight="600")}{"".join(body)}</svg>')


def _colours(rows: Sequence[Row]) -> dict[str, str]:
    series = list(dict.fromkeys(r.series for r in rows))
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}


def _domain(rows: Sequence[Row], default: tuple[float, float]) -> tuple[float, float]:
    lo = min([default[0], *(r.low for r in rows), *(r.threshold for r in rows if r.threshold is not None)])
    return (-1.0 if lo < -0.5 else (-0.5 if lo < 0 else default[0])), default[1]


def interval_plot(rows: Sequence[Row], *, title: str, axis_label: str,
                  domain: tuple[float, float] = (0.0, 1.0), zero: float | None = None,
                  width: int = 760, notes: bool = True, reference: float | None = None,
                  reference_label: str = "", threshold_legend: str = "pre-registered threshold",
                  label_width: int = _LABEL) -> str:
    """A forest plot: one band per label, one dot and whisker per series, optional thresholds."""
    if not rows:
        return ""
    domain = _domain(rows, domain)
    colours = _colours(rows)
    series = list(colours)
    plot_w = width - label_width - (_NOTE if notes else 10)
    top = _TOP + (10 if reference is not None else 0)
    body, bottom = _panel(rows, x0=label_width, width=plot_w, domain=domain, top=top, colours=colours,
                          zero=zero, axis_label=axis_label, reference=reference,
                          reference_label=reference_label)
    bands = list(dict.fromkeys(r.label for r in rows))
    for b, label in enumerate(bands):
        bold = any(r.bold for r in rows if r.label == label)
        body.append(_text(label_width - 8, top + b * _ROW + _ROW / 2 + 4, _clip(label, label_width // 7), anchor="end",
                          weight="600" if bold else "normal"))
        if notes:
            mine = [r for r in rows if r.label == label]
            note = " · ".join(r.note or f"{r.value:.2f} [{r.low:.2f}, {r.high:.2f}]" for r in mine)
            body.append(_text(width - _NOTE + 8, top + b * _ROW + _ROW / 2 + 4, _clip(note, 26), size=11,
                              fill="#444"))
    body += _legend(series, colours, label_width, 34)
    if any(r.threshold is not None for r in rows):
        x = width - 12 - 6.5 * len(threshold_legend)
        body.append(f'<line x1="{x}" y1="26" x2="{x}" y2="38" stroke="{THRESHOLD_COLOUR}" stroke-width="2" '
                    'stroke-dasharray="3 2"/>')
        body.append(_text(x + 6, 36, threshold_legend, size=11))
    return _svg(width, bottom + _BOTTOM, title, body, title)


def paired_plot(left: Sequence[Row], right: Sequence[Row], *, title: str, left_label: str,
                right_label: str, left_domain: tuple[float, float] = (-1.0, 1.0),
                right_domain: tuple[float, float] = (0.0, 1.0), right_reference: float | None = None,
                right_reference_label: str = "", width: int = 900, legend: dict[str, str] | None = None) -> str:
    """Two panels sharing their rows (e.g. refusal change and capability per transform)."""
    if not left:
        return ""
    labels = list(dict.fromkeys(r.label for r in left))
    label_w, gap = 170, 40
    panel_w = (width - label_w - gap - 10) / 2
    top = _TOP + 12
    colours = _colours([*left, *right])
    body, bottom = _panel(left, x0=label_w, width=panel_w, domain=left_domain, top=top,
                          colours=colours, zero=0.0, axis_label=left_label, bands=labels)
    body += _panel(right, x0=label_w + panel_w + gap, width=panel_w, domain=right_domain, top=top,
                   colours=colours, zero=None, axis_label=right_label, reference=right_reference,
                   reference_label=right_reference_label, bands=labels)[0]
    for b, label in enumerate(labels):
        body.append(_text(label_w - 8, top + b * _ROW + _ROW / 2 + 4, _clip(label, 24), anchor="end"))
    if legend:
        x = float(label_w)
        for name, colour in legend.items():
            body.append(f'<circle cx="{x + 5}" cy="34" r="4" fill="{colour}"/>')
            body.append(_text(x + 13, 38, name, size=11))
            x += 26 + 6.3 * len(name)
    return _svg(width, bottom + _BOTTOM, title, body, title)

