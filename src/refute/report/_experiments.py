"""A specification-gaming or oversight experiment (`refute.gaming.ExperimentResult`) as a page and
as a section of a study report: its findings, its figures as an interval plot, each curve as a line
plot with its interval band (inline SVG), and its tables.

Takes a result or its ``result.json`` (or the folder holding it), so a saved experiment renders
without rerunning anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from refute.gaming import Curve, ExperimentResult, Table
from refute.report._escape import html_text, write_page
from refute.report._plots import PALETTE, Row, _svg, _text, interval_plot

__all__ = ["curve_svg", "experiment_html", "experiment_section", "load_experiment", "write_experiment_report"]

_CSS = ("body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:980px;margin:2em auto;"
        "color:#222;padding:0 1em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;"
        "padding:4px 8px;text-align:left}th{background:#f4f4f4}svg{max-width:100%;height:auto}"
        ".caption{color:#555;font-size:0.9em}")


def load_experiment(source: ExperimentResult | str | Path) -> ExperimentResult:
    return source if isinstance(source, ExperimentResult) else ExperimentResult.load(source)


def _nice(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step + 1e-9) + 1)]


def curve_svg(curve: Curve, *, width: int = 760, height: int = 320) -> str:
    """One line per series with its interval as a shaded band; markers as dashed vertical lines."""
    series = [s for s in curve.series if s.x]
    if not series:
        return ""
    left, right, top, bottom = 64, 20, 48, 44
    xs = [x for s in series for x in s.x] + [m[0] for m in curve.markers]
    ys = [y for s in series for y in (*s.low, *s.high, *s.y) if math.isfinite(y)]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if x_hi == x_lo:
        x_hi = x_lo + 1.0
    pad = (y_hi - y_lo) * 0.05 or 0.5
    y_lo, y_hi = y_lo - pad, y_hi + pad
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return top + (1 - (min(max(y, y_lo), y_hi) - y_lo) / (y_hi - y_lo)) * ph

    body = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#ccc"/>']
    for t in _nice(y_lo, y_hi):
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>')
        body.append(_text(left - 6, py(t) + 4, f"{t:g}", anchor="end", size=11, fill="#444"))
    for t in _nice(x_lo, x_hi):
        body.append(_text(px(t), top + ph + 16, f"{t:g}", anchor="middle", size=11, fill="#444"))
    body.append(_text(left + pw / 2, height - 6, curve.x_label, anchor="middle", size=12))
    body.append(f'<text x="14" y="{top + ph / 2:.1f}" font-size="12" text-anchor="middle" '
                f'transform="rotate(-90 14 {top + ph / 2:.1f})">{html_text(curve.y_label)}</text>')
    lx = float(left)
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        band = [f"{px(x):.1f},{py(h):.1f}" for x, h in zip(s.x, s.high, strict=True)]
        band += [f"{px(x):.1f},{py(lo):.1f}" for x, lo in reversed(list(zip(s.x, s.low, strict=True)))]
        body.append(f'<polygon points="{" ".join(band)}" fill="{colour}" fill-opacity="0.18" stroke="none"/>')
        line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(s.x, s.y, strict=True))
        body.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y, lo, hi in zip(s.x, s.y, s.low, s.high, strict=True):
            body.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"><title>'
                        f'{html_text(s.name)}: x {x:g}, {y:.3f} [{lo:.3f}, {hi:.3f}]</title></circle>')
        body.append(f'<rect x="{lx}" y="28" width="12" height="4" fill="{colour}"/>')
        body.append(_text(lx + 16, 34, s.name, size=11))
        lx += 30 + 6.5 * len(s.name)
    for x, label in curve.markers:
        body.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{top + ph}" stroke="#D55E00" '
                    'stroke-dasharray="4 3"/>')
        body.append(_text(px(x) + 4, top + 12, label, size=11, fill="#D55E00"))
    return _svg(width, height, curve.title, body, f"{curve.title}: {curve.y_label} against {curve.x_label}")


def _table(t: Table, heading: str = "h3") -> str:
    head = "".join(f"<th>{html_text(h)}</th>" for h in t.head)
    rows = "".join("<tr>" + "".join(f"<td>{html_text(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    return (f"<{heading}>{html_text(t.title)}</{heading}><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>"
            "</table>")


def _figures_plot(result: ExperimentResult) -> str:
    """The figures on one interval plot, when they all share a scale (rates and differences in [-1, 1])."""
    rows = [Row(name, f.value, f.low, f.high) for name, f in result.figures.items()]
    if not rows or any(r.low < -1.0 or r.high > 1.0 for r in rows):
        return ""
    lo = -1.0 if any(r.low < 0 for r in rows) else 0.0
    levels = {f"{f.confidence:.0%}" for f in result.figures.values()}
    return interval_plot(rows, title=f"Figures ({', '.join(sorted(levels))} intervals)", axis_label="value",
                         domain=(lo, 1.0),
                         zero=0.0 if lo < 0 else None, label_width=260)


def experiment_section(result: ExperimentResult, *, level: int = 2) -> str:
    """The experiment as an HTML fragment (a ``<section>``) for a page or a study report."""
    h, sub = f"h{level}", f"h{level + 1}"
    findings = "".join(f"<li>{html_text(s)}</li>" for s in result.findings)
    figures = Table("Figures", ["figure", "value", "interval", "n", "interval method"],
                    [[k, f"{f.value:.3f}", f.text().partition(" ")[2], str(f.n), f.method]
                     for k, f in result.figures.items()])
    curves = "".join(curve_svg(c) + (f'<p class="caption">{html_text(c.caption)}</p>' if c.caption else "")
                     for c in result.curves)
    notes = "".join(f'<p class="caption">Note: {html_text(n)}</p>' for n in result.notes)
    runs = ", ".join(f"{html_text(k)} <code>{html_text(v)}</code>" for k, v in result.runs.items())
    settings = ", ".join(f"{html_text(k)}={html_text(v)}" for k, v in result.settings.items())
    return (f'<section id="experiment-{html_text(result.experiment)}"><{h}>{html_text(result.title)}</{h}>'
            f"<ul>{findings}</ul>{curves}{_figures_plot(result)}{_table(figures, sub)}"
            + "".join(_table(t, sub) for t in result.tables)
            + f"{notes}<p class=\"caption\">Settings: {settings}. "
            + f"Models: {html_text(', '.join(result.models) or '-')}. "
            + (f"Runs: {runs}. " if runs else "") + f"Runtime {result.runtime_s:.0f} s.</p></section>")


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html_text(title)}</title>'
            f"<style>{_CSS}</style></head><body>{body}"
            '<p class="caption">Made by refute. Intervals are 95% unless a figure says otherwise.</p></body></html>\n')


def experiment_html(sources: ExperimentResult | str | Path | Sequence[ExperimentResult | str | Path]) -> str:
    """One self-contained HTML page: one section per experiment."""
    items = _items(sources)
    if len(items) == 1:
        return _page(items[0].title, experiment_section(items[0], level=1))
    title = "Specification gaming and oversight experiments"
    return _page(title, f"<h1>{title}</h1>" + "".join(experiment_section(r) for r in items))


def _items(sources: ExperimentResult | str | Path | Sequence[ExperimentResult | str | Path]) -> list[ExperimentResult]:
    if isinstance(sources, (ExperimentResult, str, Path)):
        return [load_experiment(sources)]
    return [load_experiment(s) for s in sources]


def write_experiment_report(sources: ExperimentResult | str | Path | Sequence[ExperimentResult | str | Path],
                            path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` (HTML) and the same stem with ``.md``; returns both paths."""
    items = _items(sources)
    return write_page(path, experiment_html(items), "\n".join(r.to_markdown() for r in items))
