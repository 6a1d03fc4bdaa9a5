"""Rich tables of refute.stats results that a reviewer can read without the code.

Every table says how many prompts and samples each number rests on, shows the interval next to the
rate, and names its methods in the caption in plain words.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table

from refute.stats import CategoryRate, ComparisonTable, Estimate, Plan

__all__ = ["METHOD_NOTES", "comparison_table", "describe_method", "plan_table", "rate_table"]

METHOD_NOTES: dict[str, str] = {
    "wilson": "Wilson score interval (one sample per prompt)",
    "clopper-pearson": "Clopper-Pearson exact interval (one sample per prompt)",
    "wilson-design-effect": (
        "Wilson interval on the effective sample size (samples / design effect, the design effect "
        "estimated from how much prompts' rates differ, shrunk toward each prompt counting once by "
        "one event's weight; t quantile on prompts - 1 df)"),
    "wilson-design-effect-max": (
        "Wilson interval counting each prompt once (every sample had the same outcome, so the "
        "intra-prompt correlation could not be estimated and its largest value was assumed)"),
    "clopper-pearson-design-effect": (
        "Clopper-Pearson on the effective sample size (Korn-Graubard)"),
    "clopper-pearson-design-effect-max": (
        "Clopper-Pearson counting each prompt once (every sample had the same outcome)"),
    "wilson-single-prompt": "Wilson interval for a single prompt's rate",
    "clopper-pearson-single-prompt": "Clopper-Pearson interval for a single prompt's rate",
    "cluster-bootstrap-percentile": "percentile bootstrap resampling prompts",
    "cluster-bootstrap-bca": "BCa bootstrap resampling prompts",
    "rogan-gladen-bootstrap": (
        "rate corrected for judge error (Rogan-Gladen), interval from a parametric bootstrap over "
        "the apparent rate and the judge's sensitivity and specificity"),
    "newcombe-paired": "Newcombe hybrid score interval for paired proportions",
    "newcombe-unpaired": "Newcombe hybrid score interval for independent proportions (UNPAIRED)",
    "mover-wilson-design-effect": (
        "square-and-add (MOVER) of the two design-effect Wilson intervals, with the correlation "
        "of prompts' rates across conditions"),
    "paired-cluster-bootstrap-percentile": (
        "paired percentile bootstrap resampling prompts"),
    "paired-cluster-bootstrap-bca": "paired BCa bootstrap resampling prompts",
    "mcnemar-exact": "exact McNemar test on the discordant prompts",
    "sign-flip-exact": (
        "exact sign-flip randomization test on per-prompt differences (McNemar's exact test "
        "generalized to several samples per prompt)"),
    "sign-flip-monte-carlo": "sign-flip randomization test on per-prompt differences (Monte Carlo)",
    "z-test-pooled": "pooled two-proportion z-test (UNPAIRED)",
    "z-test-rao-scott": "pooled z-test on effective sample sizes, Rao-Scott (UNPAIRED)",
}


def describe_method(method: str) -> str:
    """Plain words for a method name from refute.stats (unknown names are returned as they are)."""
    base, _, note = method.partition(" (")
    words = METHOD_NOTES.get(base, base)
    return f"{words} ({note}" if note else words


def _num(x: float) -> str:
    return f"{x:.3f}"


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def _p(p: float) -> str:
    if p != p:  # NaN
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _pct(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _caption(methods: Iterable[str], extra: Sequence[str] = ()) -> str:
    seen: list[str] = []
    for m in methods:
        if m not in seen:
            seen.append(m)
    lines = [f"{m}: {describe_method(m)}." for m in seen]
    return "\n".join([*extra, *lines])


def rate_table(
    rows: Sequence[CategoryRate] | Sequence[Estimate] | Estimate,
    *,
    title: str | None = None,
) -> Table:
    """Category, prompts, samples, rate, interval, method; a caption explains the methods."""
    if isinstance(rows, Estimate):
        items = [CategoryRate("overall", rows, overall=True)]
    else:
        items = [r if isinstance(r, CategoryRate) else CategoryRate("overall", r, overall=True)
                 for r in rows]
    conf = {r.estimate.confidence for r in items}
    pct = _pct(conf.pop()) if len(conf) == 1 else "interval"
    missing = any(r.estimate.n_missing for r in items)
    table = Table(title=title, caption_justify="left")
    table.add_column("category", no_wrap=True)
    table.add_column("prompts", justify="right")
    table.add_column("samples", justify="right")
    if missing:
        table.add_column("missing", justify="right")
    table.add_column("rate", justify="right")
    table.add_column(f"{pct} interval", justify="center", no_wrap=True)
    table.add_column("method", overflow="fold")
    for r in items:
        e = r.estimate
        cells = [r.category, str(e.n_prompts), str(e.n_samples)]
        if missing:
            cells.append(str(e.n_missing))
        cells += [_num(e.value), f"[{_num(e.low)}, {_num(e.high)}]", e.method]
        table.add_row(*cells, style="bold" if r.overall else None, end_section=False)
    extra = ["Rate: mean over prompts of each prompt's rate."]
    if missing:
        extra.append("Missing: samples without a score (errors), left out.")
    extra += [f"WARNING ({r.category}): {w}" for r in items for w in r.estimate.warnings]
    table.caption = _caption((r.estimate.method for r in items), extra)
    return table


def comparison_table(table: ComparisonTable, *, title: str | None = None) -> Table:
    """Per category: prompts, rate A, rate B, B - A [interval], p, p (Holm), p (BH), regression."""
    a, b = table.label_a, table.label_b
    out = Table(title=title, caption_justify="left")
    out.add_column("category")
    out.add_column("prompts", justify="right")
    out.add_column(a, justify="right")
    out.add_column(b, justify="right")
    out.add_column(f"{b} - {a} [{_pct(table.confidence)} interval]", justify="center")
    out.add_column("p", justify="right")
    out.add_column("p (Holm)", justify="right")
    out.add_column("p (BH)", justify="right")
    out.add_column("regression")
    unmatched = uncorrected = 0
    for r in table.rows:
        c = r.comparison
        prompts = (str(c.n_prompts_a) if c.paired
                   else f"{c.n_prompts_a} / {c.n_prompts_b} unpaired")
        unmatched += 0 if r.overall else c.n_unmatched
        worse_side = c.high < 0 if table.direction == "higher_is_safer" else c.low > 0
        flag = "REGRESSION" if r.regression else ("not after correction" if worse_side else "")
        uncorrected += flag == "not after correction"
        out.add_row(
            r.category, prompts, _num(r.rate_a.value), _num(r.rate_b.value),
            f"{_signed(c.difference)} [{_signed(c.low)}, {_signed(c.high)}]",
            _p(c.p_value), _p(r.p_holm), _p(r.p_bh), flag,
            style="bold red" if r.regression else ("bold" if r.overall else None),
        )
    worse = "lower" if table.direction == "higher_is_safer" else "higher"
    corr = "Holm" if table.correction == "holm" else "BH"
    extra = [
        f"Rates: mean over prompts of each prompt's rate. Paired rows compare {a} and {b} on the "
        "same prompts.",
        f"p (Holm) controls the family-wise error, p (BH) the false discovery rate, over the "
        f"{table.n_tests} comparisons tested.",
        f"REGRESSION: {b} {worse} than {a} (less safe) with p ({corr}) <= {table.alpha:g}.",
        f"Each interval excludes 0 exactly when its p <= {1 - table.confidence:g}.",
    ]
    if uncorrected:
        extra.append(f"Not after correction: the interval is wholly on the less safe side, but "
                     f"p ({corr}) > {table.alpha:g} once the {table.n_tests} comparisons are "
                     "accounted for.")
    if unmatched:
        extra.append(f"{unmatched} prompts seen under one condition only were left out.")
    methods = [m for r in table.rows for m in (r.comparison.method, r.comparison.test)]
    methods += [m for r in table.rows for m in (r.rate_a.method, r.rate_b.method)]
    out.caption = _caption(methods, extra)
    return out


def plan_table(plan: Plan, *, title: str | None = None) -> Table:
    """What the sample-size plan needs and the assumptions behind it."""
    out = Table(title=title, show_header=True, caption_justify="left")
    out.add_column("quantity")
    out.add_column("value", justify="right")
    rows = [
        ("rate now -> rate to detect", f"{plan.p:.3f} -> {plan.p + plan.d:.3f}"),
        ("alpha", f"{plan.alpha:g} ({'two' if plan.two_sided else 'one'}-sided)"),
        ("power wanted / achieved", f"{plan.power:.2f} / {plan.achieved_power:.3f}"),
        ("design", "paired (same prompts)" if plan.paired else "independent conditions"),
        ("samples per prompt", str(plan.samples_per_prompt)),
        ("intra-prompt correlation", f"{plan.icc:.3f}"),
        ("design effect", f"{plan.design_effect:.3f}"),
        ("independent samples needed", f"{plan.n_independent:.1f}"),
        ("prompts per condition", str(plan.n_prompts)),
        ("samples per condition", str(plan.n_samples)),
    ]
    for k, v in rows:
        out.add_row(k, v)
    out.caption = (f"Formula: {plan.formula}; design effect = 1 + (samples per prompt - 1) x "
                   "intra-prompt correlation.")
    return out
