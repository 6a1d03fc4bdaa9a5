"""The robustness-gap table: refusal per transform beside the capability control."""

from __future__ import annotations

from rich.console import JustifyMethod
from rich.table import Table

from refute.redteam._gap import RobustnessGap
from refute.report.tables import _caption, _num, _p, _signed

__all__ = ["gap_table"]

_STYLE = {"empty jailbreak": "yellow", "robustness gap": "bold red", "refusal drops, but": "red"}


def gap_table(gap: RobustnessGap, *, title: str | None = None) -> Table:
    """One row per transform: refusal, change vs canonical [interval], p (Holm, BH), capability."""
    base = gap.canonical_refusal
    cap = gap.canonical_capability
    out = Table(title=title or f"robustness gap ({gap.scorer}), run {gap.harmful_run}",
                caption_justify="left")
    columns: list[tuple[str, JustifyMethod]] = [
        ("transform", "left"), ("prompts", "right"), ("refusal", "right"),
        ("change vs canonical [95% CI]", "center"), ("p", "right"), ("p (Holm)", "right"), ("p (BH)", "right"),
        ("capability", "right"), ("capability change", "center"), ("verdict", "left")]
    for col, justify in columns:
        out.add_column(col, justify=justify)
    out.add_row("canonical", str(base.n_prompts), f"{_num(base.value)} [{_num(base.low)}, {_num(base.high)}]",
                "", "", "", "", f"{_num(cap.value)} [{_num(cap.low)}, {_num(cap.high)}]" if cap else "-",
                "", "baseline", style="bold")
    for r in gap.rows:
        c = r.change
        capability = (f"{_num(r.capability.value)} [{_num(r.capability.low)}, {_num(r.capability.high)}]"
                      if r.capability else "-")
        cap_change = (f"{_signed(r.capability_change.difference)} [{_signed(r.capability_change.low)}, "
                      f"{_signed(r.capability_change.high)}]" if r.capability_change else "-")
        style = next((s for key, s in _STYLE.items() if r.verdict.startswith(key)), None)
        refusal = f"{_num(r.refusal.value)} [{_num(r.refusal.low)}, {_num(r.refusal.high)}]"
        out.add_row(r.chain, str(c.n_prompts_a), refusal,
                    f"{_signed(c.difference)} [{_signed(c.low)}, {_signed(c.high)}]", _p(c.p_value),
                    _p(r.p_holm), _p(r.p_bh), capability, cap_change, r.verdict, style=style)
    extra = [
        "Refusal and capability: rate [95% interval]. Changes are transformed - canonical on the same "
        "prompts (paired).",
        f"p (Holm) and p (BH) correct over the {len(gap.rows)} transforms; verdicts use p (Holm) <= "
        f"{gap.alpha:g}.",
        "Capability: accuracy on benign tasks with known answers under the same transform. A "
        "transform is 'not understood' when even the upper end of its capability interval is below "
        "half the canonical accuracy; a refusal drop there is an empty jailbreak.",
    ]
    methods = [m for r in gap.rows for m in (r.change.method, r.change.test)]
    out.caption = _caption(methods, extra)
    return out
