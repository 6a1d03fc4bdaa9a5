"""Bad input at the command line: exit 2 with one `error:` line, before anything runs or is written.

One regression test per finding of issue 11 that concerns the CLI's options and output paths, plus
the exit-code contract (`ExitCode`) and the Ctrl-C hint. No model loads here: `load_model` is
replaced by one that fails the test.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import typer
from _no_model import forbid_model_loading
from test_cli import _fake_run
from test_study_gate import write_study
from typer.testing import CliRunner

from refute.cli import app
from refute.cli._common import friendly_errors
from refute.cli._study import BLOCKED_EXIT
from refute.errors import ConfigError
from refute.store import Store

runner = CliRunner()

#: The documented exit codes (`refute.cli._common.ExitCode`), spelled out so the test reads alone.
FAILURE, BAD_INPUT, INTERRUPTED = 1, 2, 130


@pytest.fixture(autouse=True)
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to load or prepare a model fails the test: bad input must stop before that."""

    forbid_model_loading(monkeypatch, "a model was loaded although an option was bad")


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_bad_input(result, *words: str) -> None:
    """Exit 2, exactly one `error:` line naming ``words``, and no exception escaped."""
    assert result.exit_code == BAD_INPUT, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def runs_in(db: Path) -> list:
    if not db.exists():
        return []
    with Store(db) as store:
        return store.list_runs()


def unwritable_dir(tmp_path: Path) -> Path:
    """A folder nobody may write in; as root (where chmod does not stop writes) /proc."""
    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


# --- the exit-code contract ----------------------------------------------------------------------


def _nothing() -> None:
    """A second command."""


def _one_command(fn) -> typer.Typer:
    small = typer.Typer()
    small.command()(friendly_errors(fn))
    small.command("other")(_nothing)  # two commands, so typer keeps the command name
    return small


def test_a_pydantic_error_building_a_config_is_bad_input_named_by_its_option():
    from refute.models import GenerateConfig

    def build() -> None:
        GenerateConfig(max_tokens=8, top_p=2.0)

    result = runner.invoke(_one_command(build), ["build"])
    assert_bad_input(result, "--top-p:", "less than or equal to 1", "2.0")
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("error", "code"), [
    ("ConfigError", BAD_INPUT), ("DatasetError", BAD_INPUT), ("ScorerError", BAD_INPUT),
    ("RunNotFoundError", BAD_INPUT), ("ModelError", FAILURE), ("StoreError", FAILURE),
    ("BackendRequestError", FAILURE),
])
def test_bad_input_exits_2_and_a_runtime_failure_exits_1(error, code):
    import refute.errors

    def fail() -> None:
        raise getattr(refute.errors, error)("it went wrong [/] here")  # markup in a message is text

    result = runner.invoke(_one_command(fail), ["fail"])
    assert result.exit_code == code, result.output
    assert error_lines(result) == ["error: it went wrong [/] here"]


def test_gate_blocks_with_3_and_4_so_that_2_always_means_bad_input():
    assert BLOCKED_EXIT == {"restrict": 3, "pause": 4}
    assert BAD_INPUT not in BLOCKED_EXIT.values()
    shown = runner.invoke(app, ["gate", "--help"], terminal_width=200)
    text = " ".join(shown.output.split())
    assert "3 restrict" in text and "4 pause" in text and "2 bad input" in text


# --- Ctrl-C --------------------------------------------------------------------------------------


def _interrupt(monkeypatch: pytest.MonkeyPatch, run_id: str | None) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        exc = KeyboardInterrupt()
        if run_id is not None:
            exc.refute_run_id = run_id  # type: ignore[attr-defined]  # what the engine attaches
        raise exc

    monkeypatch.setattr("refute.cli._study.run_study", interrupted)


def test_ctrl_c_names_the_run_to_resume(tmp_path, monkeypatch):
    _interrupt(monkeypatch, "3f2a9c1b7d4e")
    result = runner.invoke(app, ["study", "run", str(write_study(tmp_path)), "--store", str(tmp_path / "s.db")])
    assert result.exit_code == INTERRUPTED
    assert "refute run --resume 3f2a9c1b7d4e" in result.stderr and "RUN_ID" not in result.stderr


def test_ctrl_c_without_a_run_id_prints_no_placeholder(tmp_path, monkeypatch):
    _interrupt(monkeypatch, None)
    result = runner.invoke(app, ["study", "run", str(write_study(tmp_path)), "--store", str(tmp_path / "s.db")])
    assert result.exit_code == INTERRUPTED
    assert "interrupted" in result.stderr and "RUN_ID" not in result.stderr and "refute runs list" in result.stderr


# --- output paths --------------------------------------------------------------------------------


def test_export_keeps_an_existing_file_when_the_run_id_is_wrong(tmp_path):
    db = tmp_path / "s.db"
    with Store(db) as store:
        _fake_run(store, {"c": [1, 0]})
    target = tmp_path / "kept.jsonl"
    target.write_text("precious\n")
    result = runner.invoke(app, ["export", "deadbeef", "-o", str(target), "--store", str(db)])
    assert_bad_input(result, "no run 'deadbeef'")
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl", "s.db"]


def test_export_keeps_an_existing_file_when_writing_fails_half_way(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    with Store(db) as store:
        run_id = _fake_run(store, {"c": [1, 0]})
    target = tmp_path / "kept.jsonl"
    target.write_text("precious\n")

    def half(store, run_id, fmt, out) -> int:
        out.write('{"half": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("refute.cli._runs.export_run", half)
    with pytest.raises(OSError):
        runner.invoke(app, ["export", run_id, "-o", str(target), "--store", str(db)], catch_exceptions=False)
    assert target.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.jsonl", "s.db"]


def test_export_writes_through_a_link_and_to_a_device_instead_of_replacing_them(tmp_path):
    db = tmp_path / "s.db"
    with Store(db) as store:
        run_id = _fake_run(store, {"c": [1, 0]})
    target, link = tmp_path / "target.jsonl", tmp_path / "link.jsonl"
    target.write_text("old\n")
    link.symlink_to(target)
    result = runner.invoke(app, ["export", run_id, "-o", str(link), "--store", str(db)])
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and len(target.read_text().splitlines()) == 2
    pipe = tmp_path / "pipe"  # like /dev/stdout: must be written, not replaced by a file
    os.mkfifo(pipe)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_text()), daemon=True)
    reader.start()
    to_pipe = runner.invoke(app, ["export", run_id, "-o", str(pipe), "--store", str(db)])
    reader.join(timeout=10)
    assert to_pipe.exit_code == 0 and pipe.is_fifo() and len("".join(read).splitlines()) == 2


def _bad_outputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    return {
        "directory": (tmp_path / "a-folder", "is a directory"),
        "missing-parent": (tmp_path / "no" / "such" / "x.html", "does not exist"),
        "file-as-parent": (tmp_path / "file.txt" / "x.html", "is not a folder"),
        "unwritable": (unwritable_dir(tmp_path) / "x.html", "cannot write"),
    }


@pytest.mark.parametrize("kind", ["directory", "missing-parent", "file-as-parent", "unwritable"])
@pytest.mark.parametrize("command", ["export", "report", "study run", "demo"])
def test_an_unusable_output_path_fails_before_anything_is_computed_or_written(tmp_path, command, kind):
    db = tmp_path / "s.db"
    with Store(db) as store:
        run_id = _fake_run(store, {"c": [1, 0, 1]})
    path, words = _bad_outputs(tmp_path)[kind]
    args = {"export": ["export", run_id], "report": ["report", run_id], "demo": ["demo"],
            "study run": ["study", "run", str(write_study(tmp_path))]}[command]
    before = sorted(tmp_path.rglob("*"))
    result = runner.invoke(app, [*args, "-o", str(path), "--store", str(db)])
    assert_bad_input(result, "--output", str(path), words)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, no folder created
    assert [r.id for r in runs_in(db)] == [run_id]


# --- options validated before anything runs ------------------------------------------------------


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_runs_list_refuses_a_limit_below_1(tmp_path, limit):
    result = runner.invoke(app, ["runs", "list", "--limit", limit, "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and "--limit" in result.output


QUICK = ["--limit", "2", "--capability-limit", "2", "--transforms", "rot13", "--no-progress"]


@pytest.mark.parametrize(("args", "words"), [
    (["--capability-dataset", "no-such-set"], "named 'no-such-set'"),
    (["--capability-dataset", "harmful"], "no target or match kind"),  # no answers to check
    (["--dataset", "missing.jsonl"], "file not found"),
    (["--scorer", "refusl"], "unknown scorer 'refusl'"),
    (["--transforms", "rot13,base65"], "unknown transform 'base65'"),
], ids=["capability-dataset", "capability-without-targets", "dataset", "scorer", "transform"])
def test_redteam_checks_both_datasets_and_the_scorer_before_a_model_loads(tmp_path, args, words):
    db = tmp_path / "s.db"
    result = runner.invoke(app, ["redteam", *QUICK, *args, "--store", str(db)])
    assert_bad_input(result, words)
    assert runs_in(db) == []


@pytest.mark.parametrize("option", ["--capability-limit", "--limit", "--max-tokens"])
@pytest.mark.parametrize("value", ["-2", "0"])
def test_redteam_refuses_counts_below_1_before_a_model_loads(tmp_path, option, value):
    db = tmp_path / "s.db"
    result = runner.invoke(app, ["redteam", *QUICK, option, value, "--store", str(db)])
    assert result.exit_code == 2 and option in result.output
    assert runs_in(db) == []


def test_a_campaign_checks_its_arguments_before_the_harmful_run(tmp_path):
    from refute.redteam._campaign import run_campaign

    with Store(tmp_path / "s.db") as store:
        with pytest.raises(ConfigError, match="capability_limit must be a whole number of at least 1"):
            run_campaign(store, None, limit=2, capability_limit=-2,  # type: ignore[arg-type]
                         transforms=["rot13"], progress=False)
        assert store.list_runs() == []


@pytest.mark.parametrize(("args", "words"), [
    (["--layers", "4-x"], "--layers"), (["--positions", "-1,,"], "--positions"),
    (["--coefficients", "1,nan"], "--coefficients"), (["--n-test", "0"], "--n-test"),
])
def test_interp_causal_refuses_malformed_lists_and_counts(tmp_path, args, words):
    result = runner.invoke(app, ["interp", "causal", *args, "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and words in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("args", "words"), [
    (["--p", "0.5", "--d", "0.1", "--alpha", "0"], "--alpha"),
    (["--p", "0.5", "--d", "0.1", "--power", "1"], "--power"),
    (["--p", "nan", "--d", "0.1"], "--p"),
    (["--p", "0.5", "--d", "inf"], "--d"),
    (["--p", "0.5", "--d", "0.1", "--samples", "0"], "--samples"),
])
def test_plan_refuses_levels_outside_0_1_and_non_finite_numbers(args, words):
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 2 and words in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_an_unknown_scorer_is_bad_input(tmp_path):
    result = runner.invoke(app, ["judge", "validate", "--scorer", "refusl", "--no-save"])
    assert_bad_input(result, "unknown scorer 'refusl'")
