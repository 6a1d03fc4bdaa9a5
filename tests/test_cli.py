"""The command line on a tiny random model: run, runs, export, compare, plan, errors, help."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refute.cli import app
from refute.store import SampleRecord, ScoreRecord, Store

runner = CliRunner()


def prompts(path: Path, n: int = 4) -> Path:
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Tell me about bread {i}",
                                        "category": "food" if i % 2 else "drink"}) + "\n"
                            for i in range(n)))
    return path


def invoke(*args: str, store: Path):
    return runner.invoke(app, [*args, "--store", str(store)], catch_exceptions=False)


def test_run_then_list_show_and_export(tiny_model_dir, tmp_path):
    db = tmp_path / "cli.db"
    result = invoke("run", "--model", f"hf:{tiny_model_dir}", "--dataset", str(prompts(tmp_path / "p.jsonl")),
                    "--max-tokens", "4", "--dtype", "float32", "--no-progress", store=db)
    assert result.exit_code == 0, result.output
    assert "refusal rate" in result.output and "overall" in result.output and "wilson" in result.output
    with Store(db) as s:
        run = s.list_runs()[0]
    listed = invoke("runs", "list", store=db)
    assert run.id in listed.output and "4/4" in listed.output
    shown = invoke("runs", "show", run.id[:6], store=db)
    assert shown.exit_code == 0 and "completed" in shown.output and "refusal v2" in shown.output
    as_csv = invoke("export", run.id, "--format", "csv", store=db)
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 4 and {"prompt_id", "completion", "score.refusal", "label.refusal"} <= set(rows[0])
    out_file = tmp_path / "run.jsonl"
    invoke("export", run.id, "-o", str(out_file), store=db)
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert sorted(x["prompt_id"] for x in lines) == ["q0", "q1", "q2", "q3"]


def test_malformed_dataset_is_named_and_nothing_runs(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "ok"}\n{"id": "b", "prompt": "x", "colour": 3}\n')
    db = tmp_path / "cli.db"
    result = runner.invoke(app, ["run", "--model", "hf:/nonexistent", "--dataset", str(bad), "--store", str(db)])
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.output and "colour" in result.output
    with Store(db) as s:
        assert s.list_runs() == []


@pytest.mark.parametrize("spec", ["mystery-model", "hf:", "ollama:llama3"])
def test_unknown_model_spec_says_what_is_valid(spec, tmp_path):
    result = runner.invoke(app, ["run", "--model", spec, "--dataset", "harmful", "--store", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "openai:<model>" in result.output


def test_resume_of_unknown_run_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["run", "--resume", "deadbeef", "--store", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "no run 'deadbeef'" in result.output


@pytest.mark.parametrize("command", [["run"], ["demo"], ["export"], ["compare"], ["plan"],
                                     ["runs", "list"], ["runs", "show"], ["models", "list"],
                                     ["models", "prepare"], ["judge", "sample"], ["judge", "validate"],
                                     ["finding", "create"], ["finding", "decide"], ["finding", "review"],
                                     ["finding", "report"], ["finding", "list"], ["finding", "show"]])
def test_every_command_explains_itself_with_an_example(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def _fake_run(store: Store, refusals: dict[str, list[int]]) -> str:
    run = store.create_run(kind="eval", name=None, model_spec="m", model_revision=None, model={}, config={},
                           versions={}, dataset_name="d", dataset_hash="h",
                           n_planned=sum(len(v) for v in refusals.values()))
    for cat, values in refusals.items():
        for i, v in enumerate(values):
            sample = SampleRecord(run_id=run.id, prompt_id=f"{cat}-{i}", category=cat, epoch=0,
                                  transform_chain="none", seed=i, messages=[], completion="x")
            store.record_sample(sample, [ScoreRecord(scorer="refusal_patterns", scorer_version="1", value=v)])
    store.set_status(run.id, "completed")
    return run.id


def test_compare_fails_only_on_a_significant_regression_and_names_the_category(tmp_path):
    db = tmp_path / "cmp.db"
    with Store(db) as s:
        base = _fake_run(s, {"cyber": [1] * 40, "fraud": [1] * 20 + [0] * 20})
        worse = _fake_run(s, {"cyber": [0] * 30 + [1] * 10, "fraud": [1] * 19 + [0] * 21})
    result = invoke("compare", base, worse, "--fail-on-regression", store=db)
    assert result.exit_code == 1
    assert "cyber" in result.stderr and "fraud" not in result.stderr.split("in:")[-1]
    assert "Holm" in result.stdout and "McNemar" in result.stdout
    same = invoke("compare", base, base, "--fail-on-regression", store=db)
    assert same.exit_code == 0 and "no significant regression" in same.stderr


def test_plan_from_a_pilot_uses_its_rate_and_clustering(tmp_path):
    from refute.stats import sample_size

    db = tmp_path / "plan.db"
    with Store(db) as s:
        pilot = _fake_run(s, {"c": [1] * 30 + [0] * 70})
    result = invoke("plan", "--pilot", pilot, "--d", "-0.1", store=db)
    expected = sample_size(0.3, -0.1).n_prompts
    assert result.exit_code == 0 and str(expected) in result.stdout


def test_plan_from_a_pilot_honours_paired(tmp_path):
    from refute.stats import sample_size

    db = tmp_path / "plan-paired.db"
    with Store(db) as s:
        pilot = _fake_run(s, {"c": [1] * 30 + [0] * 70})
    paired = sample_size(0.3, -0.1, paired=True)
    unpaired = sample_size(0.3, -0.1)
    assert paired.n_prompts != unpaired.n_prompts
    result = invoke("plan", "--pilot", pilot, "--d", "-0.1", "--paired", store=db)
    assert result.exit_code == 0, result.output
    assert str(paired.n_prompts) in result.stdout and "paired (same prompts)" in result.stdout
    assert "exact McNemar" in result.stdout.replace("\n", " ")
    # Paired plans are for one sample per prompt; several is a clear error, not a silent unpaired plan.
    several = invoke("plan", "--pilot", pilot, "--d", "-0.1", "--paired", "--samples", "3", store=db)
    assert several.exit_code != 0 and "one sample per prompt" in several.output



def test_plan_from_a_clustered_pilot_estimates_the_intra_prompt_correlation(tmp_path):
    from refute.stats import icc, sample_size

    db = tmp_path / "plan2.db"
    values = {f"p{i}": ([1, 1, 1] if i < 12 else [0, 0, 0]) if i % 3 else [1, 0, 1] for i in range(30)}
    with Store(db) as s:
        run = s.create_run(kind="eval", name=None, model_spec="m", model_revision=None, model={}, config={},
                           versions={}, dataset_name="d", dataset_hash="h", n_planned=90)
        for pid, vals in values.items():
            for epoch, v in enumerate(vals):
                s.record_sample(SampleRecord(run_id=run.id, prompt_id=pid, category="c", epoch=epoch,
                                             transform_chain="none", seed=epoch, messages=[], completion="x"),
                                [ScoreRecord(scorer="refusal_patterns", scorer_version="1", value=v)])
    flat = [(pid, v) for pid, vals in values.items() for v in vals]
    rho = icc([v for _, v in flat], [p for p, _ in flat])
    expected = sample_size(sum(v for _, v in flat) / 90, -0.1, samples_per_prompt=3, icc=rho)
    assert rho > 0.3
    result = invoke("plan", "--pilot", run.id, "--d", "-0.1", store=db)
    assert result.exit_code == 0 and str(expected.n_prompts) in result.stdout
    assert f"{expected.design_effect:.3f}" in result.stdout
    one = invoke("plan", "--pilot", run.id, "--d", "-0.1", "--samples", "1", store=db)
    assert one.exit_code == 0


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_help_summary_is_one_sentence_on_one_line():
    import typer

    for path, command in _commands(typer.main.get_command(app)):
        summary = (command.help or "").strip().split("\n\n")[0]
        assert "\n" not in summary and summary.endswith("."), f"refute {' '.join(path)}: {summary!r}"
