"""Fuzz the command line with malformed files and option values (hypothesis, bounded time).

Every case is bad input, so every case must end the same way: exit code 2, exactly one line
starting with ``error:`` (or typer's usage box for a value typer itself rejects), no exception
escaping, and no run in the store. The generators only make input that is certainly malformed:
one bad row among good ones, a wrong value for a typed field, an option value outside its range.

No case may load a model: `load_model` fails the test (`no_model_load`), so a generator that
makes valid input by mistake, or a command that checks too late, shows as a failure rather than
a long run. The `refute run` cases instead get a tiny random model, since telling that
``hf:DIR`` is not a model is the loader's job; valid-looking cases there take a second.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from _no_model import forbid_model_loading
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_study_gate import POLICY, STUDY, write_study
from typer.testing import CliRunner

from refute.cli import app
from refute.store import Store

runner = CliRunner()

#: Bounded and reproducible: the whole file runs in well under a minute on 2 cores.
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture()
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading or preparing a model fails the test: every case must stop before that."""

    forbid_model_loading(monkeypatch, "a model was loaded: the input was accepted or checked too late")


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is one per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="refute-fuzz-") as folder:
        yield Path(folder)


def invoke(args: Sequence[str], db: Path):
    result = runner.invoke(app, [*args, "--store", str(db)])
    assert_rejected(result, db, args)
    return result


def assert_rejected(result, db: Path, args: Sequence[str], existing: Collection[str] = ()) -> None:
    """Exit 2, one `error:` line or typer's usage box, no exception, no new run in the store."""
    shown = f"refute {' '.join(map(str, args))}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{shown}\nraised {result.exception!r}"
    assert "Traceback" not in result.output, shown
    assert result.exit_code == 2, shown
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    usage_box = "Usage:" in result.stderr and "Error" in result.stderr
    assert len(errors) == 1 or (usage_box and not errors), shown
    if db.exists():
        with Store(db) as store:
            assert {r.id for r in store.list_runs()} == set(existing), shown


# --- strategies ----------------------------------------------------------------------------------

#: Text a user could type (no NUL, no lone surrogates: argv cannot carry them).
typed = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
word = st.from_regex(r"[a-z][a-z0-9_-]{0,11}", fullmatch=True)
not_a_number = st.text(alphabet="abcxyz_.,-+ ", min_size=1, max_size=8).filter(lambda t: t.strip() != "")
nan_or_inf = st.sampled_from(["nan", "inf", "-inf"])


def ints_below(bound: int) -> st.SearchStrategy[str]:
    return st.integers(max_value=bound - 1, min_value=-(10**12)).map(str)


def floats_outside(low: float, high: float, *, low_ok: bool = True, high_ok: bool = True) -> st.SearchStrategy[str]:
    below = st.floats(max_value=low, allow_nan=False, allow_infinity=False, exclude_max=low_ok)
    above = st.floats(min_value=high, allow_nan=False, allow_infinity=False, exclude_min=high_ok)
    return st.one_of(below, above).map(repr)


def bad_count(minimum: int = 1) -> st.SearchStrategy[str]:
    return st.one_of(ints_below(minimum), not_a_number, st.sampled_from(["1.5", "1e3", "", "0x10"]))


# JSON rows: good ones and ones that are certainly wrong.
_RECORD_FIELDS = {"id", "prompt", "category", "target", "match", "metadata"}
good_row = st.builds(lambda i, p: {"id": f"r{i}", "prompt": p or "x"}, st.integers(0, 10**6), typed)
bad_prompt = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                       st.lists(st.integers(), max_size=2), st.just(""),
                       st.dictionaries(word, st.integers(), max_size=2))
bad_row_json = st.one_of(
    bad_prompt.map(lambda p: json.dumps({"id": "bad", "prompt": p})),
    st.dictionaries(st.sampled_from(["id", "category", "target"]), st.text(max_size=5), max_size=3).map(json.dumps),
    st.tuples(word.filter(lambda w: w not in _RECORD_FIELDS), typed).map(
        lambda kv: json.dumps({"prompt": "ok", kv[0]: kv[1]})),  # a field a Record does not have
    st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=5), st.none()).map(json.dumps),
    typed.filter(lambda t: t.strip() != "" and "\n" not in t and "\r" not in t and not _is_json(t)),
    st.just('{"id": "x", "prompt": "unterminated'),
)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@st.composite
def malformed_jsonl(draw: st.DrawFn) -> bytes:
    rows = [json.dumps(r) for r in draw(st.lists(good_row, max_size=3, unique_by=lambda r: r["id"]))]
    rows.insert(draw(st.integers(0, len(rows))), draw(bad_row_json))
    return ("\n".join(rows) + draw(st.sampled_from(["", "\n", "\r\n"]))).encode()


@st.composite
def malformed_csv(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["no-prompt-column", "empty-prompt", "ragged", "header-only", "duplicate-column"]))
    rows = [f"r{i},{p}" for i, p in enumerate(draw(st.lists(st.sampled_from(["hello", "a b", "x"]), max_size=3)))]
    header = "id,prompt"
    if kind == "no-prompt-column":
        header = "id," + draw(st.sampled_from(["colour", "size", "question_text", "x1"]))
        rows = rows or ["r0,hello"]
    elif kind == "empty-prompt":
        rows.insert(draw(st.integers(0, len(rows))), "bad,")
    elif kind == "ragged":
        rows.insert(draw(st.integers(0, len(rows))), "bad,one,two")
    elif kind == "header-only":
        rows = []
    else:
        header = "id,prompt,prompt"
        rows = [r + ",y" for r in rows] or ["r0,hello,y"]
    return "\n".join([header, *rows]).encode() + b"\n"


empty_file = st.sampled_from([b"", b"\n", b"   \n\n", b"\xef\xbb\xbf"])
binary_junk = st.tuples(st.sampled_from([b"\x00", b"\xff\xfe", b"\x80"]), st.binary(max_size=40)).map(b"".join)


def dataset_files() -> st.SearchStrategy[tuple[str, bytes]]:
    return st.one_of(
        st.tuples(st.just(".jsonl"), st.one_of(malformed_jsonl(), empty_file, binary_junk)),
        st.tuples(st.just(".csv"), st.one_of(malformed_csv(), empty_file, binary_junk)),
    )


# --- malformed datasets --------------------------------------------------------------------------


@FUZZ
@given(file=dataset_files(), slot=st.sampled_from(["--dataset", "--capability-dataset"]))
def test_redteam_rejects_a_malformed_dataset_before_anything_runs(no_model_load, file, slot):
    suffix, content = file
    with scratch() as folder:
        path = folder / f"data{suffix}"
        path.write_bytes(content)
        invoke(["redteam", slot, str(path), "--limit", "2", "--capability-limit", "2",
                "--transforms", "rot13", "--no-progress"], folder / "s.db")


@FUZZ
@given(file=dataset_files())
def test_run_rejects_a_malformed_dataset_before_anything_runs(tiny_model_dir, file):
    suffix, content = file
    with scratch() as folder:
        path = folder / f"data{suffix}"
        path.write_bytes(content)
        invoke(["run", "-m", f"hf:{tiny_model_dir}", "-d", str(path), "--max-tokens", "2", "--dtype", "float32",
                "--no-progress"], folder / "s.db")


# --- malformed label files -----------------------------------------------------------------------

LABELS = ("full_compliance", "partial_refusal", "full_refusal")
good_label = st.builds(lambda c, lab: {"completion": c, "label": lab}, typed, st.sampled_from(LABELS))
bad_label_json = st.one_of(
    st.builds(lambda c: {"completion": c}, typed),  # no label
    st.builds(lambda lab: {"label": lab}, st.sampled_from(LABELS)),  # no completion
    st.builds(lambda c, lab: {"completion": c, "label": lab}, typed, typed.filter(lambda t: t.strip() not in LABELS)),
    st.builds(lambda c: {"completion": c, "label": "full_refusal"},
              st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.booleans())),
    st.builds(lambda c: {"completion": "x", "label": c},
              st.one_of(st.none(), st.integers(), st.lists(st.none(), max_size=1))),
    st.one_of(st.lists(st.integers(), max_size=2), st.integers(), st.text(max_size=4)),
).map(json.dumps)
bad_label_line = st.one_of(
    bad_label_json,
    typed.filter(lambda t: t.strip() != "" and "\n" not in t and "\r" not in t and not _is_json(t)),
)


@st.composite
def malformed_labels(draw: st.DrawFn) -> tuple[str, bytes]:
    if draw(st.booleans()):
        rows = [json.dumps(r) for r in draw(st.lists(good_label, max_size=3))]
        rows.insert(draw(st.integers(0, len(rows))), draw(bad_label_line))
        return ".jsonl", "\n".join(rows).encode()
    kind = draw(st.sampled_from(["no-label-column", "bad-label", "short-row", "header-only"]))
    header, rows = "completion,label", ["ok,full_refusal"]
    if kind == "no-label-column":
        header = "completion," + draw(st.sampled_from(["labels", "Label", "verdict"]))
    elif kind == "bad-label":
        rows.append(f"bad,{draw(word.filter(lambda w: w not in LABELS))}")
    elif kind == "short-row":
        rows.append("only-a-completion")
    else:
        rows = []
    return ".csv", "\n".join([header, *rows]).encode()


@FUZZ
@given(file=st.one_of(malformed_labels(), st.tuples(st.sampled_from([".jsonl", ".csv"]), empty_file)))
def test_judge_validate_rejects_a_malformed_label_file(file):
    suffix, content = file
    with scratch() as folder:
        path = folder / f"labels{suffix}"
        path.write_bytes(content)
        invoke(["judge", "validate", "--labels", str(path), "--scorer", "refusal_patterns", "--no-save"],
               folder / "s.db")


# --- malformed study and policy files ------------------------------------------------------------


def _replace_once(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


yaml_scalar = st.one_of(word, st.integers(-5, 5).map(str), st.sampled_from(["null", "[]", "{}", "[1, 2]", "yes", "''",
                                                                           "1.5", ".nan", "-.inf"]))


def not_one_of(allowed: Sequence[str]) -> st.SearchStrategy[str]:
    return yaml_scalar.filter(lambda v: v.strip("'\"") not in allowed)


#: (text in STUDY, what may replace it: every draw is invalid there).
STUDY_MUTATIONS: list[tuple[str, st.SearchStrategy[str]]] = [
    ("version: 1\n", not_one_of(["1"]).map(lambda v: f"version: {v}\n")),
    ("kind: propensity\n", not_one_of(["capability", "propensity"]).map(lambda v: f"kind: {v}\n")),
    ("threat_model: misuse\n", not_one_of(["misuse", "misalignment", "accident"]).map(
        lambda v: f"threat_model: {v}\n")),
    ("    per_category: 3\n", st.sampled_from(["0", "-1", "three", "1.5", "[]", "{}", "''"]).map(
        lambda v: f"    per_category: {v}\n")),
    ("    dataset: benign-lookalike\n", word.filter(lambda w: w not in ("harmful", "benign-lookalike", "benign-tasks"))
     .map(lambda v: f"    dataset: {v}\n")),
    ("statistic: refusal,", not_one_of(["refusal", "compliance", "accuracy", "worst_transform_compliance"]).map(
        lambda v: f"statistic: {v},")),
    ("better: higher,", not_one_of(["higher", "lower"]).map(lambda v: f"better: {v},")),
    ("    safe_if: {at_least: 0.5}", st.sampled_from(["2", "-3", "x", "[]", ".nan"]).map(
        lambda v: f"    safe_if: {{at_least: {v}}}")),
    ("id: small-study\n", st.sampled_from(["", "id: Not A Slug!\n", "id: []\n", "id:\n"])),
    ("claim: It refuses most of them.\n", st.just("")),
    ("title: A small refusal study\n", word.filter(lambda w: w not in _STUDY_KEYS).map(
        lambda w: f"title: A small refusal study\n{w}: 1\n")),  # a key the schema does not have
    ("runs:\n", st.sampled_from(["runs: 3\n", "runs: []\nrunz:\n", "runs:\n\t- id: tab\n", "runs:\n  - [\n"])),
]
_STUDY_KEYS = {"version", "id", "title", "question", "threat_model", "kind", "claim", "change_my_mind", "model",
               "policy", "runs", "measures", "thresholds", "calibration", "description", "notes"}

POLICY_MUTATIONS: list[tuple[str, st.SearchStrategy[str]]] = [
    ("    crossed_if: {above: 0.2}", st.sampled_from(["2", "-1.5", "x", "[]", ".inf"]).map(
        lambda v: f"    crossed_if: {{above: {v}}}")),
    ("    if_unmitigated: restrict", not_one_of(["restrict", "pause"]).map(lambda v: f"    if_unmitigated: {v}")),
    ("    kind: propensity\n", not_one_of(["capability", "propensity"]).map(lambda v: f"    kind: {v}\n")),
    ("name: Test policy\n", st.sampled_from(["", "name: []\n", "name: Test policy\nname: again\n"])),
    ("      - measure: safeguarded_refusal", word.filter(lambda w: w != "safeguarded_refusal").map(
        lambda w: f"      - measure: {w}x")),
    ("thresholds:\n", st.sampled_from(["thresholds: []\nthresholdz:\n", "thresholds: 1\n", "thresholds:\n  - {\n"])),
]


@st.composite
def mutated(draw: st.DrawFn, base: str, mutations: list[tuple[str, st.SearchStrategy[str]]]) -> str:
    old, replacement = draw(st.sampled_from(mutations))
    return _replace_once(base, old, draw(replacement))


junk_yaml = st.one_of(typed, st.sampled_from(["", "---\n", "- 1\n- 2\n", "[", "a: b: c", "? x\n: y\n", "*alias\n",
                                              "&a [*a]\n", "!!python/object:os.system {}\n"]))


@FUZZ
@given(study=st.one_of(mutated(STUDY, STUDY_MUTATIONS), junk_yaml))
def test_study_run_rejects_a_malformed_study(no_model_load, study):
    assume(study != STUDY)
    with scratch() as folder:
        path = write_study(folder, study=study)
        invoke(["study", "run", str(path), "--no-progress"], folder / "s.db")
        assert not (folder / "studies").exists() and not (folder / "reports").exists()


@FUZZ
@given(policy=st.one_of(mutated(POLICY, POLICY_MUTATIONS), junk_yaml), command=st.sampled_from(["gate", "study run"]))
def test_gate_and_study_run_reject_a_malformed_policy(no_model_load, policy, command):
    assume(policy != POLICY)
    with scratch() as folder:
        path = write_study(folder, policy=policy)
        args = (["gate", str(folder / "policy.yaml"), "--study", str(path)] if command == "gate"
                else ["study", "run", str(path), "--no-progress"])
        invoke(args, folder / "s.db")


@pytest.mark.parametrize("target", ["labels", "study", "policy"])
def test_binary_junk_in_a_label_study_or_policy_file_is_bad_input(no_model_load, tmp_path, target):
    junk = b"\x00\xff\xfe\x80 not text"
    path = write_study(tmp_path)
    if target == "labels":
        (tmp_path / "labels.jsonl").write_bytes(junk)
        args = ["judge", "validate", "--labels", str(tmp_path / "labels.jsonl"), "--scorer", "refusal_patterns",
                "--no-save"]
    else:
        (path if target == "study" else tmp_path / "policy.yaml").write_bytes(junk)
        args = ["study", "run", str(path)]
    invoke(args, tmp_path / "s.db")


# --- bad option values ---------------------------------------------------------------------------


def _unknown_spec(spec: str) -> bool:
    from refute.errors import ConfigError
    from refute.models import parse_spec

    try:
        parse_spec(spec)
    except ConfigError:
        return True
    return False


def _registered() -> dict[str, set[str]]:
    """The names each registry knows, so that an 'unknown' name is never a real one."""
    from refute.datasets import list_datasets
    from refute.datasets._adapters import ADAPTER_NAMES
    from refute.engine import list_solvers
    from refute.redteam import list_transforms
    from refute.scorers import list_scorers

    return {"dataset": set(list_datasets()) | {"none"}, "adapter": set(ADAPTER_NAMES),
            "transform": {t.name for t in list_transforms()} | {"none"}, "scorer": set(list_scorers()),
            "solver": set(list_solvers()), "model": {"default", "gemma3-270m"}}


KNOWN = _registered()
unknown_spec = typed.filter(lambda s: s.strip() != "" and _unknown_spec(s))


def unknown(kind: str) -> st.SearchStrategy[str]:
    """A name no registry of ``kind`` has, and no file or folder in the working directory."""
    return word.map(lambda w: "zz" + w).filter(lambda w: w not in KNOWN[kind] and not Path(w).exists())


def with_option(base: list[str], cases: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[str]]:
    """``base`` (valid on its own) plus one option with a bad value, as ``--option=value``."""
    return st.one_of(*(values.map(lambda v, o=option: [*base, f"{o}={v}"]) for option, values in cases.items()))


open_unit = st.one_of(floats_outside(0.0, 1.0, low_ok=False, high_ok=False), nan_or_inf)
negative = st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr)

REDTEAM_BAD = {
    "--limit": bad_count(), "--capability-limit": bad_count(), "--max-tokens": bad_count(), "--seed": ints_below(0),
    "--scorer": unknown("scorer"), "--transforms": unknown("transform"), "--dataset": unknown("dataset"),
    "--capability-dataset": unknown("dataset"), "--model": unknown_spec,
}
PLAN_BAD = {
    "--p": st.one_of(floats_outside(0.0, 1.0), nan_or_inf, not_a_number),
    "--d": st.one_of(floats_outside(-1.0, 1.0), nan_or_inf, st.just("0")),
    "--alpha": open_unit, "--power": open_unit, "--samples": bad_count(),
    "--icc": st.one_of(floats_outside(0.0, 1.0), nan_or_inf),
}
CAUSAL_BAD = {
    "--n-train": bad_count(), "--n-val": bad_count(), "--n-test": bad_count(), "--n-tasks": bad_count(),
    "--max-tokens": bad_count(), "--batch-size": bad_count(), "--seed": ints_below(0),
    "--max-kl": st.one_of(negative, nan_or_inf), "--max-ce": st.one_of(negative, nan_or_inf),
    "--layers": st.sampled_from(["a", "1-", "4-2", "0-99999999", "1,,2", ""]),
    "--positions": st.sampled_from(["x", "-1,", "--1", "1-a"]),
    "--coefficients": st.one_of(not_a_number, st.sampled_from(["1,nan", "inf", "1,,2"])),
    "--harmful": unknown("dataset"), "--tasks": unknown("dataset"), "--model": unknown_spec,
    "--scorer": unknown("scorer"),
}
PROBE_BAD = {
    "--batch-size": bad_count(), "--seed": ints_below(0),
    "--kind": word.filter(lambda w: w not in ("logistic", "diff_means")),
    "--sites": st.sampled_from(["12", "resid_pre.x", "resid_pre.4-", ".3", "resid_pre."]),
    "--positive": unknown("dataset"), "--negative": unknown("dataset"), "--model": unknown_spec,
}


def command_cases(run_id: str) -> st.SearchStrategy[tuple[list[str], bool]]:
    """(arguments, whether the command takes --store); ``run_id`` names a run that exists."""
    stored = st.one_of(
        with_option(["runs", "list"], {"--limit": st.one_of(bad_count(), st.integers(10**6 + 1, 10**30).map(str))}),
        with_option(["redteam", "--limit=2", "--capability-limit=2", "--transforms=rot13", "--no-progress"],
                    REDTEAM_BAD),
        with_option(["plan", "--p=0.5", "--d=-0.1"], PLAN_BAD),
        with_option(["compare", run_id, run_id], {
            "--alpha": open_unit, "--direction": word, "--correction": word.filter(lambda w: w not in ("holm", "bh"))}),
        with_option(["judge", "validate", "--no-save"], {
            "--scorer": unknown("scorer"), "--arg": st.one_of(word, st.sampled_from(["mode=zzz", "=1", "nope=1"]))}),
        with_option(["score", run_id], {"--batch-size": bad_count(), "--scorer": unknown("scorer"),
                                        "--arg": st.sampled_from(["nope=1", "x"])}),
        with_option(["interp", "causal"], CAUSAL_BAD),
        with_option(["export", run_id], {"--format": word.filter(lambda w: w not in ("jsonl", "csv"))}),
        unknown("dataset").map(lambda t: ["report", t]),
    )
    plain = st.one_of(
        with_option(["interp", "probe", "--positive=harmful", "--negative=benign-lookalike", "--sites=resid_pre.1"],
                    PROBE_BAD),
        unknown("model").map(lambda n: ["models", "prepare", n]),
    )
    return st.one_of(stored.map(lambda a: (a, True)), plain.map(lambda a: (a, False)))


@pytest.mark.parametrize("pattern", ["%%%%", "____"])
def test_a_run_id_made_of_sql_wildcards_names_no_run(no_model_load, stored_db, pattern):
    db, run_id = stored_db
    result = runner.invoke(app, ["export", pattern, "--store", str(db)])
    assert_rejected(result, db, ["export", pattern], existing={run_id})


def _stored_run(db: Path) -> str:
    """A small completed run, so that commands reading one get past the run id."""
    from refute.store import SampleRecord, ScoreRecord

    with Store(db) as store:
        run = store.create_run(kind="eval", name=None, model_spec="m", model_revision=None, model={}, config={},
                               versions={}, dataset_name="d", dataset_hash="h", n_planned=2)
        for i in range(2):
            store.record_sample(SampleRecord(run_id=run.id, prompt_id=f"p{i}", category="c", epoch=0,
                                             transform_chain="none", seed=i, messages=[], completion="x"),
                                [ScoreRecord(scorer="refusal_patterns", scorer_version="1", value=i)])
        store.set_status(run.id, "completed")
    return run.id


@pytest.fixture(scope="module")
def stored_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("fuzz-store") / "s.db"
    return db, _stored_run(db)


@FUZZ
@given(data=st.data())
def test_every_command_rejects_bad_option_values(no_model_load, stored_db, data):
    db, run_id = stored_db
    args, takes_store = data.draw(command_cases(run_id))
    result = runner.invoke(app, [*args, "--store", str(db)] if takes_store else args)
    assert_rejected(result, db, args, existing={run_id})


# --- refute run ----------------------------------------------------------------------------------

RUN_BAD = {
    "--limit": bad_count(), "--epochs": bad_count(), "--max-tokens": bad_count(),
    "--temperature": st.one_of(st.floats(max_value=-1e-9, allow_infinity=False).map(repr), nan_or_inf, not_a_number),
    "--top-p": st.one_of(floats_outside(0.0, 1.0, low_ok=False), nan_or_inf),
    "--template": typed.filter(lambda t: "{prompt}" not in t),
    "--batch-size": bad_count(), "--concurrency": bad_count(),
    "--scorer": unknown("scorer"), "--transform": unknown("transform"), "--solver": unknown("solver"),
    "--adapter": unknown("adapter"), "--dtype": word.filter(lambda w: w not in ("auto", "float32", "bfloat16")),
    "--timeout": st.one_of(negative, st.just("0"), nan_or_inf), "--retries": ints_below(0),
    "--harm": word.filter(lambda w: w not in ("harmful", "benign")),
    "--solver-arg": st.one_of(word, st.just("=3")),
}

#: The cases of issue 11 by name: each once, before the random ones.
RUN_NAMED = [("--limit", "-1"), ("--limit", "0"), ("--epochs", "0"), ("--temperature", "-1"), ("--top-p", "2"),
             ("--max-tokens", "0"), ("--template", "hello")]


def _small_dataset(folder: Path) -> Path:
    path = folder / "p.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Tell me about bread {i}"}) + "\n" for i in range(2)))
    return path


def _run_args(model_dir: Path, data: Path, option: str, value: str) -> list[str]:
    args = ["run", "-m", f"hf:{model_dir}", "-d", str(data), "--dtype", "float32", "--no-progress"]
    if option != "--max-tokens":
        args += ["--max-tokens", "2"]
    return [*args, f"{option}={value}"]


@pytest.mark.parametrize(("option", "value"), RUN_NAMED, ids=[f"{o}={v}" for o, v in RUN_NAMED])
def test_run_rejects_the_bad_options_of_issue_11(tiny_model_dir, tmp_path, option, value):
    invoke(_run_args(tiny_model_dir, _small_dataset(tmp_path), option, value), tmp_path / "s.db")


def test_run_rejects_a_folder_that_is_not_a_model(tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "notes.txt").write_text("hello")
    invoke(["run", "-m", f"hf:{folder}", "-d", str(_small_dataset(tmp_path)), "--max-tokens", "2", "--no-progress"],
           tmp_path / "s.db")


@FUZZ
@given(data=st.data())
def test_run_rejects_bad_option_values(tiny_model_dir, data):
    option = data.draw(st.sampled_from(sorted(RUN_BAD)))
    with scratch() as folder:
        invoke(_run_args(tiny_model_dir, _small_dataset(folder), option, data.draw(RUN_BAD[option])), folder / "s.db")
