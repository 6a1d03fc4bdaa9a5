"""The shape every `refute gaming` experiment shares: results, settings, the report's section, and
the study run type ``experiment`` with its ``statistic: experiment`` measures (a constant experiment
registered here, so the mechanics are tested apart from any one experiment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from refute.cli import app
from refute.errors import ConfigError
from refute.gaming import (
    EXPERIMENTS,
    Context,
    Curve,
    ExperimentResult,
    Figure,
    Series,
    Table,
    experiment,
    get_experiment,
    parse_settings,
    run_experiment,
    settings_digest,
)
from refute.gate import study_gate
from refute.report._document import build_report
from refute.report._experiments import curve_svg, experiment_html, write_experiment_report
from refute.report._html import render_html
from refute.store import Store
from refute.study import load_study, run_study


class ConstantSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field("default", description="Model spec.")
    rate: float = Field(0.25, ge=0.0, le=1.0, description="The figure it reports.")
    width: float = Field(0.1, ge=0.0, description="Half the interval's width.")
    rate_file: str | None = Field(None, description="A .txt file holding the rate (overrides rate).")


CALLS: list[str] = []


def run_constant(settings: ConstantSettings, ctx: Context) -> ExperimentResult:
    backend = ctx.models(settings.model)
    CALLS.append(settings.model)
    r, w = settings.rate, settings.width
    if settings.rate_file is not None:
        r = float(Path(settings.rate_file).read_text())
    fig = Figure(r, max(0.0, r - w), min(1.0, r + w), n=10, method="given")
    curve = Curve("rate over x", "x", "rate", [Series("rate", [1, 2, 4], [r, r, r], [r - w] * 3, [r + w] * 3)],
                  markers=[(2.0, "peak")])
    return ExperimentResult("ignored", "A constant", [f"the rate is {fig.text()}"], {}, {"rate": fig}, [curve],
                            [Table("t", ["a", "b"], [["1", "<b>2</b>"]])], models=[type(backend).__name__])


@pytest.fixture(autouse=True, scope="module")
def _registered():
    """The constant experiment, registered for this module's tests only (the CLI builds its commands
    from the registry: no other test sees it)."""
    experiment("constant-test", title="A constant", summary="Reports the rate it is given.",
               settings=ConstantSettings, model_fields=("model",))(run_constant)
    yield
    EXPERIMENTS.pop("constant-test")


class Fake:
    spec = "fake"


def test_a_figure_must_hold_its_value_and_be_a_number() -> None:
    with pytest.raises(ValueError, match="must hold the value"):
        Figure(0.5, 0.6, 0.7, n=3, method="m")
    with pytest.raises(ValueError, match="must be a number"):
        Figure(float("nan"), 0.0, 1.0, n=3, method="m")
    assert Figure(0.2, 0.1, 0.3, n=3, method="m").excludes_zero
    assert not Figure(0.2, -0.1, 0.3, n=3, method="m").excludes_zero


def test_run_experiment_validates_settings_saves_the_result_and_it_reloads(tmp_path: Path) -> None:
    ctx = Context(store=None, out_dir=tmp_path / "out", models=lambda spec: Fake())  # type: ignore[arg-type]
    result = run_experiment("constant-test", {"rate": 0.4}, ctx)
    assert result.experiment == "constant-test"  # stamped, whatever the function wrote
    assert result.settings == {"model": "default", "rate": 0.4, "width": 0.1, "rate_file": None}
    assert result.runtime_s >= 0
    again = ExperimentResult.load(tmp_path / "out")
    assert again == result
    assert again.figures["rate"].text() == "0.400 [0.300, 0.500]"
    assert "| rate | 0.400 | [0.300, 0.500] | 10 | given |" in again.to_markdown()
    with pytest.raises(ConfigError, match=r"--set.rate: Input should be less than or equal to 1.*its settings: model, "
                                         "rate, width, rate_file"):
        parse_settings("constant-test", {"rate": 2}, where="--set")
    with pytest.raises(ConfigError, match=r"unknown experiment 'nope'; choose one of: .*constant-test"):
        get_experiment("nope")
    a, b = (settings_digest("constant-test", parse_settings("constant-test", v)) for v in ({}, {"rate": 0.25}))
    assert a == b != settings_digest("constant-test", parse_settings("constant-test", {"rate": 0.3}))


def test_the_page_draws_each_curve_with_its_band_and_escapes_every_text(tmp_path: Path) -> None:
    ctx = Context(store=None, out_dir=tmp_path, models=lambda spec: Fake())  # type: ignore[arg-type]
    result = run_experiment("constant-test", {}, ctx)
    svg = curve_svg(result.curves[0])
    assert svg.count("<polygon") == 1 and svg.count("<polyline") == 1 and svg.count("<circle") == 3
    assert "peak" in svg and "stroke-dasharray" in svg  # the marker
    page = experiment_html(result)
    assert "&lt;b&gt;2&lt;/b&gt;" in page and "<b>2</b>" not in page
    assert "the rate is 0.250 [0.150, 0.350]" in page
    html, md = write_experiment_report([tmp_path, result], tmp_path / "both")
    assert html.suffix == ".html" and html.read_text().count('<section id="experiment-constant-test">') == 2
    assert md.read_text().count("## A constant") == 2


STUDY = """\
version: 1
id: constant-study
title: A constant experiment in a study
question: Is the constant below its limit?
threat_model: misalignment
kind: propensity
claim: The rate stays low.
change_my_mind: A rate above 0.5.
model: hf:some/model
runs:
  - id: const
    type: experiment
    experiment: constant-test
    settings: {{rate: {rate}}}
measures:
  rate:
    run: const
    statistic: experiment
    figure: rate
    better: lower
    description: The constant's rate.
thresholds:
  - measure: rate
    safe_if: {{at_most: 0.5}}
"""


def test_a_study_runs_an_experiment_measures_its_figure_and_reports_it(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.format(rate=0.3))
    CALLS.clear()
    with Store(tmp_path / "r.db") as store:
        result = run_study(load_study(path), store, model=Fake(), progress=False, gate=study_gate)  # type: ignore[arg-type]
        assert CALLS == ["hf:some/model"]  # the study's model filled the experiment's model setting
        m = result.measurements()["rate"]
        assert m is not None and (m.value, m.low, m.high) == pytest.approx((0.3, 0.2, 0.4))
        assert [v.verdict for v in result.verdicts()] == ["met"]  # 0.4, the conservative end, is <= 0.5
        again = run_study(load_study(path), store, model=Fake(), progress=False, gate=study_gate)  # type: ignore[arg-type]
        assert CALLS == ["hf:some/model"] and again.run_refs()["const"].reused  # the saved result is reused
        doc = build_report(store, str(path))
        page = render_html(doc)
    assert 'id="experiments"' in page and "the rate is 0.300 [0.200, 0.400]" in page
    assert "Behaviour on requests unlike these" not in page  # no eval runs: no sentences about their prompts
    saved = json.loads(next((tmp_path / "studies" / "gaming").glob("*-const-*/result.json")).read_text())
    assert saved["settings"]["rate"] == 0.3
    path.write_text(STUDY.format(rate=0.3).replace("figure: rate", "figure: nope"))
    with Store(tmp_path / "r.db") as store, pytest.raises(ConfigError, match="has no figure 'nope'; it has rate"):
        run_study(load_study(path), store, model=Fake(), progress=False, gate=study_gate)  # type: ignore[arg-type]


@pytest.mark.parametrize(("edit", "message"), [
    ("    settings: {rate: 0.3}", r"study.yaml:14: field 'runs\[0\].settings'.*settings.rate: Input should be less "),
    ("    experiment: constant-test", "an experiment run needs 'experiment'"),
    ("    statistic: experiment", "'experiment' needs an experiment run"),
])
def test_study_errors_name_the_field(tmp_path: Path, edit: str, message: str) -> None:
    text = STUDY.format(rate=0.3)
    if "settings" in edit:
        text = text.replace("{rate: 0.3}", "{rate: 3}")
    elif "experiment: constant" in edit:
        text = text.replace(edit + "\n", "")
    else:
        text = text.replace(edit, "    statistic: refusal")
        message = "run 'const' is an experiment run"
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_study(path)


def test_refute_gaming_runs_an_experiment_from_the_cli_and_names_a_bad_setting(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "gw"
    args = ["gaming", "gridworlds", "--set", "seeds=5", "--set", "episodes=300", "--set", "environments=[boat-race]",
            "--store", str(tmp_path / "r.db"), "--out", str(out), "--no-progress"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    saved = ExperimentResult.load(out)
    assert saved.settings["episodes"] == 300 and saved.settings["environments"] == ["boat-race"]
    gap = saved.figures["boat-race.gap"]
    assert gap.low > 0 and gap.n == 5  # the checkpoint loop is found within 300 episodes by every seed
    page = (out / "report.html").read_text()
    assert "<polyline" in page and "boat-race" in page
    assert "| boat-race.gap |" in done.stdout
    bad = runner.invoke(app, ["gaming", "gridworlds", "--set", "seeds=many", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--set.seeds: Input should be a valid integer" in bad.output
    assert not (tmp_path / "x").exists()  # nothing ran
    no_model = runner.invoke(app, ["gaming", "gridworlds", "-m", "default", "--out", str(tmp_path / "x")])
    assert no_model.exit_code == 2 and "uses no model" in no_model.output
    joined = runner.invoke(app, ["gaming", "report", str(out), str(out / "result.json"), "-o", str(tmp_path / "j")])
    assert joined.exit_code == 0 and (tmp_path / "j.html").read_text().count('id="experiment-gridworlds"') == 2


def test_a_studys_experiment_reads_its_files_beside_the_study_and_reruns_when_one_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "rate.txt").write_text("0.1")
    path = folder / "study.yaml"
    path.write_text(STUDY.format(rate=0.3).replace("{rate: 0.3}", "{rate_file: rate.txt}"))
    monkeypatch.chdir(tmp_path)  # elsewhere: the file is found beside the study, not here
    with Store(tmp_path / "r.db") as store:
        first = run_study(load_study(path), store, model=Fake(), progress=False, gate=study_gate)  # type: ignore[arg-type]
        assert first.measurements()["rate"].value == pytest.approx(0.1)  # type: ignore[union-attr]
        (folder / "rate.txt").write_text("0.2")  # same study text, new data: not reused
        second = run_study(load_study(path), store, model=Fake(), progress=False, gate=study_gate)  # type: ignore[arg-type]
        assert not second.run_refs()["const"].reused
        assert second.measurements()["rate"].value == pytest.approx(0.2)  # type: ignore[union-attr]
    (folder / "rate.txt").unlink()
    with pytest.raises(ConfigError, match=r"runs\[0\].settings': no file .*rate.txt"):
        load_study(path)
    path.write_text(STUDY.format(rate=0.3).replace("    settings:", "    limit: 3\n    settings:"))
    with pytest.raises(ConfigError, match="limit does not apply to an experiment run"):
        load_study(path)
    path.write_text(STUDY.format(rate=0.3).replace("    figure: rate", "    figure: rate\n    scorer: refusal"))
    with pytest.raises(ConfigError, match="'scorer' does not apply to statistic experiment"):
        load_study(path)
