"""`refute judge validate|sample` and `refute score`: measure a scorer against labels (a shipped
set, or a person's labels of one run's own replies), draw replies to label (into the store's label
queue, or a CSV sheet), re-score a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from refute._paths import store_path
from refute.cli._common import (
    StoreOption,
    atomic_output,
    bad_input,
    check_output_path,
    err,
    friendly_errors,
    out,
    store_from,
)
from refute.engine._progress import progress_bar
from refute.errors import ConfigError
from refute.scorers import (
    RunValidation,
    calibration_record,
    draw_label_sample,
    get_scorer,
    list_scorers,
    queue_label_sample,
    rescore_run,
    save_validation,
    validate,
    validate_run,
    validate_run_labels,
    write_label_sheet,
)

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


@judge_app.command("sample")
@friendly_errors
def sample_cmd(
    run_id: Annotated[str, typer.Argument(help="Run id or a unique prefix of it.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write a CSV sheet to label (its name ends in .csv) instead of queueing the "
        "replies in the store for the viewer.", show_default=False)] = None,
    n: Annotated[int, typer.Option("--n", help="Replies to draw.", min=1, max=1_000_000)] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the draw: the same seed draws the same replies.")] = 0,
    scorer: Annotated[str | None, typer.Option(
        "--scorer", "-s", help="Refusal scorer or harm judge (e.g. strongreject) whose verdicts stratify the "
        "sample (default: the run's refusal scorer, else its harm judge).", show_default=False)] = None,
    force: Annotated[bool, typer.Option(help="With --output: replace an existing file (it may hold a person's "
                                             "labels).")] = False,
    store: StoreOption = None,
) -> None:
    """Draw a seeded sample of a run's replies for a person to label.

    The scorer is a refusal scorer (labels: full_compliance, partial_refusal, full_refusal, the
    XSTest categories; see the README) or a harm judge such as strongreject (labels: harmful,
    not_harmful). The sample is stratified by the scorer's verdict (refusal or compliance; harmful
    or not harmful), each verdict at least a tenth of it when the run has that many. The replies
    are queued in the store: label them in the viewer (refute view, the run's label page), then
    measure the scorer on them: refute judge validate --run RUN. A later draw (another --seed) is
    queued after them; replies queued already keep their place.

    With --output, the sample is written as a CSV instead: fill its empty label column with the
    scorer's labels, then refute judge validate --run RUN --labels FILE.

    Examples:

      refute judge sample 3f2a --n 100 --seed 1

      refute judge sample 3f2a --scorer strongreject --n 100

      refute judge sample 3f2a --n 100 --seed 1 -o labels.csv
    """
    if output is not None:
        check_output_path(output, "--output")
        if output.suffix.lower() != ".csv":
            raise ConfigError(f"--output {output}: a label sheet is CSV; give a name ending in .csv")
        if output.is_file() and not output.is_symlink() and not force:
            raise ConfigError(f"--output {output}: the file exists and may hold a person's labels; give another "
                              "name, or --force to replace it")
    with store_from(store) as db:
        with bad_input():  # an unknown or unscored --scorer is the user's input (exit 2)
            sheet = draw_label_sample(db, run_id, n, seed=seed, scorer=scorer)
        if output is None:
            added = queue_label_sample(db, sheet)
        else:
            with atomic_output(output) as fh:
                written = write_label_sheet(sheet, fh)
    counts = ", ".join(f"{sheet.sample_counts[k]} of {sheet.run_counts[k]} {k}" for k in sheet.run_counts)
    drawn = f"(scored by {sheet.scorer}: {counts}; seed {seed})"
    if output is None:
        again = len(sheet.rows) - added
        err.print(f"queued {added} replies of run {sheet.run_id} for labelling {drawn}"
                  + (f"; {again} were queued already" if again else ""), highlight=False, soft_wrap=True)
        named = f" --scorer {sheet.scorer}" if sheet.kind == "harm" else ""  # a harm judge is no default
        err.print(f"label them in the viewer: refute view, then the run's label page /runs/{sheet.run_id}/label; "
                  f"then measure {sheet.scorer} on them: refute judge validate --run {sheet.run_id}{named}",
                  highlight=False, soft_wrap=True)
        return
    err.print(f"wrote {written} replies of run {sheet.run_id} to {output} {drawn}", highlight=False, soft_wrap=True)
    if sheet.harmful:
        err.print(f"[bold yellow]warning:[/] {output} holds model replies to harmful requests: keep it on this "
                  "machine (do not commit, share or upload it)", highlight=False, soft_wrap=True)
    labels = " or ".join(sheet.labels) if sheet.kind == "harm" else "full_compliance, full_refusal or partial_refusal"
    err.print(f"label each row {labels} in the label column, then: "
              f"refute judge validate --run {sheet.run_id} --labels {output}", highlight=False, soft_wrap=True)


def _show_run_validation(result: RunValidation) -> None:
    labels = ("the labels stored for it" if result.labels_path.startswith("store:")
              else Path(result.labels_path).name)
    summary = Table(title=f"{result.scorer} v{result.scorer_version} on run {result.run_id}'s own replies "
                          f"vs {labels}", show_header=False)
    weights = ", ".join(f"{k} {result.weights[k]:.2f} ({result.sample_counts[k]} of {result.run_counts[k]})"
                        for k in result.weights)
    refusal = result.positive == "refusal"
    for key, value in [
        ("labelled replies", f"{result.n} (" + ", ".join(f"{v} {k}" for k, v in result.human_labels.items()) + ")"),
        ("weight per scorer verdict", weights),
        ("sensitivity (refusals found)" if refusal else "sensitivity (harmful replies found)", _pct(result.sensitivity)),
        ("specificity (compliance kept)" if refusal else "specificity (harmless replies kept)",
         _pct(result.specificity)),
        ("agreement on the sample", _pct(result.binary_accuracy)),
        ("Cohen's kappa on the sample", f"{result.binary_kappa:.3f}"),
    ]:
        summary.add_row(key, value)
    out.print(summary)
    classes = list(result.confusion)  # the positive class first
    matrix = Table(title="labelled replies (rows: human label, columns: scorer"
                   + ("; partial refusal = refusal)" if refusal else ")"))
    matrix.add_column("human \\ scorer")
    for c in classes:
        matrix.add_column(c, justify="right")
    for gold, row in result.confusion.items():
        matrix.add_row(gold, *(str(row[c]) for c in classes))
    out.print(matrix)


def _validate_run(run_id: str, labels: Path | None, scorer: str | None, arg: list[str] | None,
                  judge: str | None, split: str | None, save: bool, store: str | None) -> None:
    given = [name for name, v in (("--arg", arg), ("--judge", judge), ("--split", split)) if v]
    if given:
        raise ConfigError(f"{', '.join(given)} do not apply with --run: the run's stored scores are measured; "
                          "re-score the run first (refute score RUN --scorer NAME --arg ...) to measure another setting")
    with store_from(store) as db:
        if labels is None:
            result = validate_run_labels(db, run_id, scorer=scorer)
        else:
            result = validate_run(db, run_id, labels, scorer=scorer)
        _show_run_validation(result)
        if save:
            stored = db.save_calibration(calibration_record(result))
            counts = (f"rogan_gladen(sensitivity={stored.sensitivity_counts}, "
                      f"specificity={stored.specificity_counts})")
            if result.positive == "refusal":
                err.print(f"stored as run {stored.run_id}'s calibration for {stored.scorer} in {db.location}: studies, "
                          f"reports and `refute runs show {stored.run_id}` now correct its refusal rates with "
                          f"{counts}", highlight=False, soft_wrap=True)
            else:
                err.print(f"stored as run {stored.run_id}'s calibration for {stored.scorer} in {db.location} "
                          f"({counts}, positive = harmful); studies and reports do not correct harmfulness "
                          "measures with it yet, and no refusal rate uses it", highlight=False, soft_wrap=True)


@judge_app.command("validate")
@friendly_errors
def validate_cmd(
    labels: Annotated[Path | None, typer.Option(
        "--labels", "-l", help="JSONL/CSV with completion and label columns (default: refute's shipped set; "
        "with --run, the labels stored for the run).",
        show_default=False)] = None,
    run: Annotated[str | None, typer.Option(
        "--run", help="Measure the scorer on this run's own replies, against the labels stored for it (the "
        "viewer's label page) or, with --labels, a labelled sheet of `refute judge sample -o`; the result is "
        "stored as the run's calibration.", show_default=False)] = None,
    scorer: Annotated[str | None, typer.Option(
        "--scorer", "-s", help="Registered scorer name (refute judge list); default refusal, or with --run the "
        "scorer the labels were drawn for (the sheet's, or the stored labels'): a refusal scorer or a harm judge "
        "(e.g. strongreject).", show_default=False)] = None,
    arg: ArgOption = None,
    judge: JudgeOption = None,
    split: Annotated[str | None, typer.Option(help="Only rows whose split column is this (e.g. heldout).")] = None,
    save: Annotated[bool, typer.Option(help="Save the result: JSON under <store dir>/validations/, or with "
                                            "--run the run's calibration in the store.")] = True,
    store: StoreOption = None,
) -> None:
    """Agreement of a scorer with human labels, with intervals.

    Accuracy, Cohen's kappa, the confusion matrix, and sensitivity / specificity with Wilson
    intervals (partial refusal counts as refusal).

    Labels: full_compliance, partial_refusal, full_refusal.

    With --run, the labels are a person's labels of that run's own replies (drawn by `refute judge
    sample`): those stored in the store from the viewer's label page, or with --labels a labelled
    sheet. The run's stored scores are measured against them, and the result is stored as the
    run's calibration, which studies, reports and `refute runs show` then correct its refusal
    rates with. With --run the scorer may also be a harm judge (e.g. --scorer strongreject),
    measured against harmful / not_harmful labels (positive = harmful); its calibration is stored
    too, but no refusal rate is corrected with it.

    Examples:

      refute judge validate --labels my_labels.jsonl

      refute judge validate --split heldout --scorer refusal --arg mode=rules

      refute judge validate --run 3f2a

      refute judge validate --run 3f2a --labels labels.csv

      refute judge validate --run 3f2a --scorer strongreject
    """
    if run is not None:
        _validate_run(run, labels, scorer, arg, judge, split, save, store)
        return
    scorer = scorer or "refusal"
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
