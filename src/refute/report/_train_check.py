"""The generalisation check of a trained fix (`refute.train.check_generalisation`) as one HTML page
(interval plots of the paired differences, the table, the FLAGs and the checks) and its Markdown."""

from __future__ import annotations

from pathlib import Path

from refute.report._escape import html_text
from refute.report._plots import Row, interval_plot
from refute.train import CheckResult

__all__ = ["train_check_html", "write_train_check_report"]

_CSS = ("body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:960px;margin:2em auto;"
        "color:#222;padding:0 1em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;"
        "padding:4px 8px;text-align:left}th{background:#f4f4f4}.yes{color:#009E73;font-weight:600}"
        ".no{color:#D55E00;font-weight:600}.flag{color:#D55E00;font-weight:600}svg{max-width:100%;height:auto}")


def train_check_html(result: CheckResult) -> str:
    """One self-contained page: paired differences as interval plots, then the numbers and checks."""
    c = result.context
    rows = [Row(m.label, m.change.difference, m.change.low, m.change.high) for m in result.measures if not m.detail]
    o = result.overfit
    rows.append(Row("overfit: trained gain - held-out gain", o.difference, o.low, o.high))
    plot = interval_plot(rows, title="Trained - base, paired on held-out prompts", zero=0.0, domain=(-1.0, 1.0),
                         axis_label="difference (95% interval)", label_width=290)
    body = "".join(
        f"<tr><td>{'&nbsp;&nbsp;' if m.detail else ''}{html_text(m.label)}</td><td>{m.base.value:.3f}</td>"
        f"<td>{m.trained.value:.3f}</td><td>{m.change.difference:+.3f}</td>"
        f"<td>[{m.change.low:+.3f}, {m.change.high:+.3f}]</td><td>{m.change.p_value:.2g}</td>"
        f"<td>{m.change.n_prompts_a}</td></tr>" for m in result.measures)
    table = ("<table><thead><tr><th>measure</th><th>base</th><th>trained</th><th>change</th><th>95% interval</th>"
             f"<th>p</th><th>prompts</th></tr></thead><tbody>{body}</tbody></table>")
    checks = "".join(f"<li>{html_text(name)}: <span class=\"{'yes' if ok else 'no'}\">{'holds' if ok else 'FAILS'}"
                     f"</span> ({html_text(detail)})</li>" for name, (ok, detail) in result.checks.items())
    flags = "".join(f'<p class="flag">FLAG: {html_text(f)}</p>' for f in result.flags)
    verdict = "The fix holds on every check." if result.holds else "The fix FAILS at least one check."
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Does the fix generalise?</title>'
            f"<style>{_CSS}</style></head><body><h1>Does the fix generalise?</h1>"
            f"<p>Base <code>{html_text(c.get('base_spec', ''))}</code> against trained "
            f"<code>{html_text(c.get('trained_spec', ''))}</code>, on held-out prompts only.</p>"
            f"<p><strong>{verdict}</strong></p>{flags}<h2>Checks</h2><ul>{checks}</ul>{plot}{table}"
            f"<p>Overfit to the eval: {o.difference:+.3f} [{o.low:+.3f}, {o.high:+.3f}], p={o.p_value:.2g} "
            f"({html_text(o.method)}, {o.n_prompts} prompts).</p></body></html>")


def write_train_check_report(result: CheckResult, path: str | Path) -> Path:
    """Write ``path`` (HTML) and the same stem with ``.md``; returns the HTML path."""
    path = Path(path)
    html_path = path if path.suffix in (".html", ".htm") else path.with_suffix(".html")
    html_path.write_text(train_check_html(result), encoding="utf-8")
    html_path.with_suffix(".md").write_text(result.to_markdown() + "\n", encoding="utf-8")
    return html_path
