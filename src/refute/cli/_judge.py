"""`refute judge validate` and `refute score`: measure a scorer against labels, re-score a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from refute._paths import store_path
from refute.cli._common import StoreOption, bad_input, err, friendly_errors, out, store_from
from refute.engine._progress import progress_bar
from refute.errors import ConfigError
from refute.scorers import get_scorer, list_scorers, rescore_run, save_validation, validate

judge_app = typer.Typer(help="Measure scorers and judges against human labels.", no_args_is_help=True)

ScorerOption = Annotated[str, typer.Option("--scorer", "-s", help="Registered scorer name (refute judge list).")]
ArgOption = Annotated[
    list[str] | None,
    typer.Option("--arg", help="Scorer argument KEY=VALUE (repeatable; VALUE is read as JSON when it parses)."),
]
JudgeOption = Annotated[
    str | None,
    typer.Option("--judge", help="Judge model spec for judge scorers, e.g. default or openai:gpt-4o-mini."),
]


def _scorer_args(args: list[str] | None, judge: str | None) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for item in args or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--arg {item!r}: write KEY=VALUE, e.g. --arg mode=rules")
        try:
            parsed[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key.strip()] = value
    if judge is not None:
        parsed["judge"] = judge
    return parsed


def _pct(iv: Any) -> str:
    if iv.n_samples == 0:
        return "-"
    return f"{iv} ({round(iv.value * iv.n_samples)}/{iv.n_samples})"


@judge_app.command("list")
@friendly_errors
def list_judges() -> None:
    """List the registered scorers.

    Example: refute judge list
    """
    table = Table(title="scorers")
    table.add_column("name")
    table.add_column("what it measures")
    for name, desc in list_scorers().items():
        table.add_row(name, desc)
    out.print(table)


@judge_app.command("validate")
@friendly_errors
def validate_cmd(
    labels: Annotated[Path | None, typer.Option(
        "--labels", "-l", help="JSONL/CSV with completion and label columns (default: refute's shipped set).",
        show_default=False)] = None,
    scorer: ScorerOption = "refusal",
    arg: ArgOption = None,
    judge: JudgeOption = None,
    split: Annotated[str | None, typer.Option(help="Only rows whose split column is this (e.g. heldout).")] = None,
    save: Annotated[bool, typer.Option(help="Save the result as JSON under <store dir>/validations/.")] = True,
    store: StoreOption = None,
) -> None:
    """Agreement of a scorer with human labels, with intervals.

    Accuracy, Cohen's kappa, the confusion matrix, and sensitivity / specificity with Wilson
    intervals (partial refusal counts as refusal).

    Labels: full_compliance, partial_refusal, full_refusal.

    Examples:

      refute judge validate --labels my_labels.jsonl

      refute judge validate --split heldout --scorer refusal --arg mode=rules
    """
    if labels is None:
        labels = Path(__file__).resolve().parent.parent / "scorers" / "data" / "refusal_labels.jsonl"
    with bad_input():  # an unknown scorer or bad --arg is the user's input (exit 2)
        s = get_scorer(scorer, **_scorer_args(arg, judge))
    err.print(f"scoring {labels} with {s.name} v{s.version} ...")
    result = validate(s, labels, subset=split)
    summary = Table(title=f"{result.scorer} v{result.scorer_version} vs {Path(result.labels_path).name}"
                          + (f" (split {split})" if split else ""), show_header=False)
    for key, value in [
        ("labelled completions", str(result.n) + (f" ({result.n_unscorable} unscorable)" if result.n_unscorable else "")),
        ("binary accuracy", _pct(result.binary_accuracy)),
        ("binary Cohen's kappa", f"{result.binary_kappa:.3f}"),
        ("sensitivity (refusals found)", _pct(result.sensitivity)),
        ("specificity (compliance kept)", _pct(result.specificity)),
        ("3-class accuracy", _pct(result.accuracy)),
        ("3-class Cohen's kappa", f"{result.kappa:.3f}"),
    ]:
        summary.add_row(key, value)
    out.print(summary)
    matrix = Table(title="confusion (rows: human label, columns: scorer)")
    cols = [c for c in ("full_compliance", "partial_refusal", "full_refusal", "unscorable")
            if c != "unscorable" or result.n_unscorable]
    matrix.add_column("human \\ scorer")
    for c in cols:
        matrix.add_column(c, justify="right")
    for gold, row in result.confusion.items():
        matrix.add_row(gold, *(str(row[c]) for c in cols))
    out.print(matrix)
    if len(result.by_hard_case) > 1:
        cases = Table(title="binary accuracy by hard case")
        cases.add_column("hard case")
        cases.add_column("accuracy [95% CI] (correct/n)")
        for case, iv in result.by_hard_case.items():
            cases.add_row(case, _pct(iv))
        out.print(cases)
    if save:
        path = save_validation(result, store_path(store))
        err.print(f"saved {path}; rogan_gladen(sensitivity={result.sensitivity_counts}, "
                  f"specificity={result.specificity_counts}) corrects rates for this scorer's error")


@friendly_errors
def score(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    scorer: ScorerOption = "refusal",
    arg: ArgOption = None,
    judge: JudgeOption = None,
    batch_size: Annotated[int, typer.Option(help="Samples per scoring batch (judges answer a batch at once).", min=1)] = 64,
    store: StoreOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Re-score a stored run with a scorer; no new generation.

    Earlier scores by the same scorer name are replaced and the new scorer version is recorded.

    Examples:

      refute score 3f2a --scorer refusal

      refute score 3f2a --scorer strongreject --judge openai:gpt-4o-mini
    """
    with bad_input():
        s = get_scorer(scorer, **_scorer_args(arg, judge))
    with store_from(store) as db:
        run = db.get_run(run_id)
        total, _ = db.sample_counts(run.id)
        with progress_bar(f"score {run.id}", total=total, enabled=progress) as bar:
            seen = [0]

            def advance(done: int, _total: int) -> None:
                bar.advance(done - seen[0])
                seen[0] = done

            written = rescore_run(db, run.id, s, batch_size=batch_size, progress=advance)
        labels: dict[str, int] = {}
        for r in written:
            labels[r.label or "-"] = labels.get(r.label or "-", 0) + 1
        values = [r.value for r in written if r.value is not None]
        table = Table(title=f"run {run.id} re-scored by {s.name} v{s.version}")
        table.add_column("label")
        table.add_column("samples", justify="right")
        for label, count in sorted(labels.items()):
            table.add_row(label, str(count))
        out.print(table)
        if values:
            err.print(f"mean value {sum(values) / len(values):.3f} over {len(values)} samples; "
                      f"`refute runs show {run.id}` gives rates with intervals")
