"""The causal test of `refute.interp.run_causal` as a page: Markdown, and one self-contained HTML
file with SVG interval plots (the report's own, so it lives here, above interpretability).

Takes a `CausalResult` or its ``to_dict()`` (the ``--json`` / ``result.json`` file), so a saved
result renders without rerunning anything. The HTML has the conditions' refusal rates and the paired
differences as interval plots, the same numbers as tables, and the replication checks.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from refute.interp._causal import CausalResult, Condition
from refute.report._plots import Row, interval_plot

__all__ = ["causal_html", "causal_markdown", "load_causal", "write_causal_report"]

_CSS = ("body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:960px;margin:2em auto;"
        "color:#222;padding:0 1em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;"
        "padding:4px 8px;text-align:left}th{background:#f4f4f4}.yes{color:#009E73;font-weight:600}"
        ".no{color:#D55E00;font-weight:600}svg{max-width:100%;height:auto}")


def load_causal(source: CausalResult | dict[str, Any] | str | Path) -> CausalResult:
    """A `CausalResult` from itself, its ``to_dict()``, or a JSON file of it."""
    if isinstance(source, CausalResult):
        return source
    data = json.loads(Path(source).read_text()) if isinstance(source, (str, Path)) else dict(source)
    data["conditions"] = {k: v if isinstance(v, Condition) else Condition(**v)
                          for k, v in data["conditions"].items()}
    return CausalResult(**data)


def causal_markdown(source: CausalResult | dict[str, Any] | str | Path) -> str:
    return "# Causal test of a refusal direction\n\n" + load_causal(source).to_markdown() + "\n"


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def causal_html(source: CausalResult | dict[str, Any] | str | Path) -> str:
    """One HTML page: interval plots (inline SVG), the tables and the checks."""
    r = load_causal(source)
    d = r.direction
    rate_rows = [Row(c.name, c.rate["value"], c.rate["low"], c.rate["high"]) for c in r.conditions.values()]
    diff_rows = [Row(name, c["difference"], c["low"], c["high"]) for name, c in r.comparisons.items()]
    rates_svg = interval_plot(rate_rows, title="Refusal rate (accuracy for tasks) per condition, held-out prompts",
                              axis_label="rate (95% interval)")
    diffs_svg = interval_plot(diff_rows, title="Paired differences (B - A)", axis_label="difference (95% interval)",
                              domain=(-1.0, 1.0), zero=0.0, label_width=290)
    conditions = _table(["condition", "rate", "95% interval", "prompts", "empty replies", "run"], [
        [escape(c.name), f"{c.rate['value']:.3f}", f"[{c.rate['low']:.3f}, {c.rate['high']:.3f}]",
         str(c.rate.get("n_prompts", "")), str(c.n_empty), f"<code>{escape(c.run_id)}</code>"]
        for c in r.conditions.values()], "conditions")
    comparisons = _table(["comparison (B - A, paired)", "difference", "95% interval", "p"], [
        [escape(n), f"{c['difference']:+.3f}", f"[{c['low']:+.3f}, {c['high']:+.3f}]", f"{c['p_value']:.2g}"]
        for n, c in r.comparisons.items()], "comparisons")
    cost = _table(["cost", "mean", "95% interval", "texts"], [
        [escape(n), f"{c['mean']:+.4f}", f"[{c['low']:+.4f}, {c['high']:+.4f}]", str(c["n"])]
        for n, c in r.cost.items()], "cost")
    checks = _table(["check", "holds"], [
        [escape(n), '<span class="yes">yes</span>' if ok else '<span class="no">NO</span>']
        for n, ok in r.checks.items()], "checks")
    notes = "".join(f"<p>Note: {escape(n)}</p>" for n in r.notes)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Causal test</title>'
            f"<style>{_CSS}</style></head><body><h1>Causal test of a refusal direction</h1>"
            f"<p>Direction: resid_pre layer {d['layer']}, position {d['position']}, norm {d['norm']:.2f} "
            f"(digest <code>{escape(str(d['digest']))}</code>); addition coefficient {r.coefficient:g}. "
            f"Splits: {escape(', '.join(f'{k} {v}' for k, v in r.splits.items()))}.</p>"
            f"<h2>Checks</h2>{checks}<h2>Conditions</h2>{rates_svg}{conditions}"
            f"<h2>Paired differences</h2>{diffs_svg}{comparisons}<h2>Cost</h2>{cost}{notes}"
            f"<p>Runtime {r.runtime_s:.0f} s; files in <code>{escape(r.workdir)}</code>.</p></body></html>")


def write_causal_report(source: CausalResult | dict[str, Any] | str | Path, path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` (HTML) and the same stem with ``.md``; returns both paths."""
    path = Path(path)
    html_path = path if path.suffix in (".html", ".htm") else path.with_suffix(".html")
    md_path = html_path.with_suffix(".md")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    result = load_causal(source)
    html_path.write_text(causal_html(result), encoding="utf-8")
    md_path.write_text(causal_markdown(result), encoding="utf-8")
    return html_path, md_path
