"""The PostgreSQL store: the same operations give the same results as SQLite, concurrent writers
from several processes store every sample once, a password never shows, and `refute store copy`
moves runs between SQLite and PostgreSQL without losing a row."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from refute._paths import store_location, store_path
from refute.cli._app import app
from refute.errors import ConfigError, StoreError
from refute.store import (
    CalibrationRecord,
    ExchangeRecord,
    FindingRecord,
    PostgresStore,
    SampleRecord,
    ScoreRecord,
    Store,
    copy_runs,
    open_store,
    run_rows,
)
from refute.store._records import CachedReply
from refute.store._schema import SCHEMA, tables

pytest.importorskip("psycopg")

runner = CliRunner()
_names = itertools.count()


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory):
    from _postgres import PostgresUnavailable, start_postgres

    try:
        server = start_postgres(tmp_path_factory.mktemp("pg"))
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh database on the test server."""
    return str(pg_server.create_database(f"t{os.getpid()}_{next(_names)}"))


def _run(store: Store, parent_id: str | None = None, role: str | None = None, name: str = "r") -> str:
    return store.create_run(kind="eval", name=name, model_spec="fake", model_revision=None, model={"backend": "x"},
                            config={"seed": 1}, versions={"refute": "0"}, dataset_name="d", dataset_hash="h",
                            n_planned=3, parent_id=parent_id, role=role).id


def _sample(run_id: str, prompt: str, error: str | None = None, completion: str = "reply") -> SampleRecord:
    return SampleRecord(run_id=run_id, prompt_id=prompt, category="c", epoch=0, transform_chain="none",
                        seed=2**40 + 7, messages=[{"role": "user", "content": f"{prompt}: 100% sure?"}],
                        completion=None if error else completion, latency_s=0.25, error=error,
                        metadata={"turns": [1, 2]})


def _layers(decision: str, ms: float) -> list[dict[str, Any]]:
    return [{"name": "filter", "type": "regex", "phase": "input", "decision": decision, "ms": ms},
            {"name": "judge", "type": "judge", "phase": "output", "decision": "pass", "ms": 2 * ms}]


def _exercise(s: Store) -> dict[str, Any]:
    """Every store operation once; the results with store-made ids and times taken out."""
    got: dict[str, Any] = {}
    run = _run(s)
    child = _run(s, parent_id=run, role="capability", name="child")
    sid0 = s.record_sample(_sample(run, "p0"), [ScoreRecord(scorer="refusal", scorer_version="1", value=1.0),
                                                ScoreRecord(scorer="judge", scorer_version="2", value=0.0)])
    s.record_sample(_sample(run, "p1", error="boom"))
    got["counts_with_failure"] = s.sample_counts(run)
    sid1 = s.record_sample(_sample(run, "p1"), [ScoreRecord(scorer="refusal", scorer_version="3", value=0.0)])
    sid2 = s.record_sample(_sample(run, "p2", completion="other"))
    rank = {sid0: 0, sid1: 1, sid2: 2}
    with pytest.raises(StoreError, match="already completed"):
        s.record_sample(_sample(run, "p0", completion="overwritten"))
    s.record_scores(run, [ScoreRecord(sample_id=sid2, scorer="refusal", scorer_version="1", value=0.5, label="x")])
    got["counts"] = s.sample_counts(run)
    got["keys"] = sorted(s.completed_keys(run))
    got["samples"] = [{**x.model_dump(exclude={"id", "run_id", "created_at"})} for x in s.samples(run)]
    got["scores"] = [(rank[x.sample_id or 0], x.scorer, x.scorer_version, x.value, x.label)
                     for x in s.scores(run)]
    got["scorers"] = {k: sorted(v.split(",")) for k, v in s.scorers_of(run).items()}
    cal = CalibrationRecord(run_id=run, scorer="refusal", scorer_version="1", n_labels=10,
                            sensitivity_counts=(4, 1), specificity_counts=(4, 1), labels_path="l.jsonl",
                            labels_sha256="a" * 64, detail={"k": 1})
    s.save_calibration(cal)
    s.save_calibration(cal.model_copy(update={"n_labels": 12, "sensitivity_counts": (5, 1)}))
    got["calibrations"] = [c.model_dump(exclude={"run_id", "created_at"}) for c in s.calibrations(run)]
    got["queued"] = [s.queue_labels(run, "refusal", 7, [(sid0, "refusal"), (sid2, "compliance")]),
                     s.queue_labels(run, "refusal", 8, [(sid2, "compliance"), (sid1, "compliance")])]
    s.save_label(run, sid0, "refusal", "full_refusal", "ann")
    s.save_label(run, sid0, "refusal", "partial_refusal", "bob")
    got["next"] = rank[s.next_to_label(run, "refusal").sample_id]  # type: ignore[union-attr]
    got["progress"] = s.queue_progress(run, "refusal")
    got["queue"] = [(rank[q.sample_id], q.position, q.scorer_label, q.label) for q in s.label_queue(run)]
    got["labelled"] = [(rank[lab.sample_id], lab.label, lab.labeller, v)
                       for lab, v in s.labelled_scores(run, "refusal")]
    with pytest.raises(ConfigError, match="not a reply of run"):
        s.save_label(child, sid0, "", "harmful", "ann")
    got["deleted"] = [s.delete_label(run, sid0, "refusal"), s.delete_label(run, sid0, "refusal")]
    finding = s.add_finding(FindingRecord(id="", title="gap", kind="attack", created_by="ann", run_ids=[run],
                                          models=["fake"], sample_ids=[sid0], evidence={"rate": 0.5}), {"p": 1})
    s.append_finding_event(finding.id, "decision", "bob", {"ok": True})
    got["events"] = [(e.kind, e.actor, e.payload) for e in s.finding_events(finding.id[:6])]
    got["recipe"] = s.finding_recipe(finding.id)
    for sql in ("UPDATE findings SET title = 'x'", "DELETE FROM finding_events", "UPDATE finding_recipes SET "
                "recipe_json = '{}'"):
        with pytest.raises(StoreError, match="append-only"), s.transaction() as db:
            db.execute(sql)
    got["finding_title"] = s.get_finding(finding.id).title
    base = {"server_id": "srv", "model_spec": "fake", "stack_name": "st", "stack_sha256": "", "request_id": "r",
            "stream": False, "status": 200, "seed": 1, "messages": [{"role": "user", "content": "hi"}],
            "reply": "ok", "redacted": False, "total_ms": 5.0, "model_ms": 3.0}
    ids = s.add_exchanges([ExchangeRecord(**base, outcome="ok", layers=_layers("pass", 1.0)),
                           ExchangeRecord(**base, outcome="blocked", layers=_layers("block", 3.0),
                                          blocked_by="filter"),
                           ExchangeRecord(**base, outcome="flagged", layers=_layers("flag", 2.0))])
    got["exchange_ids_increase"] = ids == sorted(ids)
    got["recent"] = [(e.outcome, e.layers[0]["decision"]) for e in s.recent_exchanges(2)]
    got["layer_stats"] = [vars(x) for x in s.exchange_layer_stats()]
    got["layer_stats_since"] = [vars(x) for x in s.exchange_layer_stats(since=ids[1])]
    s.cache_put("k", CachedReply("one", 1, 2, 0.5, "stop"))
    s.cache_put("k", CachedReply("two", 3, 4, 0.75, None))
    got["cache"] = (s.cache_get("k"), s.cache_get("missing"))
    s.set_status(run, "completed")
    got["run"] = s.get_run(run[:5]).model_dump(exclude={"id", "created_at", "finished_at", "pid", "host"})
    got["children"] = [(c.name, c.role, c.parent_id == run) for c in s.children(run, role="capability")]
    got["listed"] = [r.name for r in s.list_runs()], [r.name for r in s.list_runs(limit=1)]
    got["query"] = s.query("SELECT COUNT(*) AS n, MAX(latency_s) AS m FROM samples WHERE run_id = ?", [run])[0]["n"]
    with pytest.raises(StoreError, match="no run 'nope'"):
        s.get_run("nope")
    return got


def test_the_same_operations_give_the_same_results_on_sqlite_and_postgresql(tmp_path, pg_url):
    with Store(tmp_path / "s.db") as lite:
        on_sqlite = _exercise(lite)
    with open_store(pg_url) as pg:
        assert isinstance(pg, PostgresStore)
        on_postgres = _exercise(pg)
    for key in on_sqlite:
        assert on_postgres[key] == on_sqlite[key], key
    # and the results are the right ones, not merely equal
    assert on_sqlite["counts_with_failure"] == (1, 1) and on_sqlite["counts"] == (3, 0)
    assert on_sqlite["samples"][0]["seed"] == 2**40 + 7 and on_sqlite["samples"][0]["completion"] == "reply"
    assert on_sqlite["scorers"] == {"judge": ["2"], "refusal": ["1", "3"]}
    assert on_sqlite["calibrations"][0]["n_labels"] == 12 and len(on_sqlite["calibrations"]) == 1
    assert on_sqlite["queued"] == [2, 1] and on_sqlite["progress"] == (3, 1)
    assert on_sqlite["queue"] == [(0, 0, "refusal", "partial_refusal"), (2, 1, "compliance", None),
                                  (1, 2, "compliance", None)]
    assert on_sqlite["labelled"] == [(0, "partial_refusal", "bob", 1.0)] and on_sqlite["deleted"] == [True, False]
    assert [e[0] for e in on_sqlite["events"]] == ["created", "decision"] and on_sqlite["finding_title"] == "gap"
    assert on_sqlite["recent"] == [("blocked", "block"), ("flagged", "flag")]
    first = on_sqlite["layer_stats"][0]
    assert (first["name"], first["n"], first["passed"], first["blocked"], first["flagged"]) == ("filter", 3, 1, 1, 1)
    assert first["mean_ms"] == pytest.approx(2.0) and on_sqlite["layer_stats"][1]["name"] == "judge"
    assert on_sqlite["layer_stats_since"][0]["n"] == 2
    assert on_sqlite["cache"] == (CachedReply("two", 3, 4, 0.75, None), None)
    assert on_sqlite["run"]["status"] == "completed" and on_sqlite["children"] == [("child", "capability", True)]
    assert on_sqlite["listed"] == (["child", "r"], ["child"]) and on_sqlite["query"] == 3


_TYPE_CLASS = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision"}


def test_the_postgresql_schema_has_every_sqlite_table_and_column_with_a_matching_type(tmp_path, pg_url):
    with Store(tmp_path / "s.db") as lite, open_store(pg_url) as pg:
        for table in tables(SCHEMA):
            columns = lite._read(f"PRAGMA table_info({table})")
            assert columns, table
            theirs = {r["column_name"]: (r["data_type"], r["is_nullable"]) for r in pg._read(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = ?",
                (table,))}
            assert set(theirs) == {c["name"] for c in columns}, table
            for c in columns:
                nullable = "NO" if c["notnull"] or c["pk"] else "YES"
                assert theirs[c["name"]] == (_TYPE_CLASS[c["type"]], nullable), (table, c["name"])
        assert pg._read("SELECT value FROM meta WHERE key = 'schema_version'")[0][0] == \
            lite._read("SELECT value FROM meta WHERE key = 'schema_version'")[0][0]
        assert not pg.has_search_index()


def test_a_store_url_is_kept_whole_and_its_side_files_get_a_local_folder(monkeypatch):
    url = "postgresql://me:pw@db.lab:6543/refute"
    assert store_location(url) == url
    assert store_path(url) == Path(".refute/postgresql/db.lab-6543-refute/store")
    monkeypatch.setenv("REFUTE_STORE", "postgres://db.lab/x")
    assert store_location(None) == "postgres://db.lab/x"
    assert store_location("~/a.db") == Path.home() / "a.db"


def test_refute_run_stores_its_samples_in_postgresql_and_runs_list_shows_them(tiny_model_dir, tmp_path, pg_url,
                                                                              monkeypatch):
    monkeypatch.chdir(tmp_path)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Say {i}."}) + "\n" for i in range(3)))
    result = runner.invoke(app, ["run", "-m", f"hf:{tiny_model_dir}", "-d", str(prompts), "--max-tokens", "3",
                                 "--dtype", "float32", "--no-progress", "--store", pg_url])
    assert result.exit_code == 0, result.output
    with open_store(pg_url) as pg:
        (run,) = pg.list_runs()
        assert pg.sample_counts(run.id) == (3, 0)
        assert sorted(s.prompt_id for s in pg.samples(run.id)) == ["q0", "q1", "q2"]
    listed = runner.invoke(app, ["runs", "list", "--store", pg_url])
    assert listed.exit_code == 0 and run.id in listed.output and "3/3" in listed.output, listed.output


def _writer(url: str, run_id: str, worker: int, shared: list[str]) -> int:
    """Write the shared keys in this worker's own order, then its own keys; returns how many shared keys it won."""
    won = 0
    order = shared[:]
    random.Random(worker).shuffle(order)
    with open_store(url) as s:
        for prompt in order:
            try:
                s.record_sample(_sample(run_id, prompt), [ScoreRecord(scorer="w", scorer_version="1", value=worker)])
                won += 1
            except StoreError as exc:
                if "already completed" not in str(exc):
                    raise
        for i in range(10):
            s.record_sample(_sample(run_id, f"own-{worker}-{i}"))
    return won


def test_eight_processes_writing_one_postgresql_store_store_every_sample_once(pg_url):
    with open_store(pg_url) as s:
        run_id = _run(s)
    shared = [f"p{i}" for i in range(30)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        won = pool.starmap(_writer, [(pg_url, run_id, w, shared) for w in range(8)])
    assert sum(won) == 30  # each shared sample was written by exactly one process
    with open_store(pg_url) as s:
        assert s.sample_counts(run_id) == (30 + 80, 0)
        rows = s._read("SELECT prompt_id, COUNT(*) FROM samples WHERE run_id = ? GROUP BY prompt_id", (run_id,))
        assert len(rows) == 110 and all(r[1] == 1 for r in rows)
        assert len(s.scores(run_id)) == 30


def _open_and_count(url: str) -> int:
    with open_store(url) as s:
        return len(s._read("SELECT * FROM meta"))


def test_processes_opening_a_fresh_database_at_once_create_its_schema_once(pg_url):
    with multiprocessing.get_context("fork").Pool(6) as pool:
        assert pool.map(_open_and_count, [pg_url] * 6) == [1] * 6


def test_store_refuses_a_url_so_nothing_writes_a_file_named_like_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=r"open_store\(url\)") as caught:
        Store("postgresql://me:pw@db.lab/refute")
    assert "pw" not in str(caught.value) and list(tmp_path.iterdir()) == []


def test_a_completed_sample_is_never_overwritten_on_postgresql(pg_url):
    with open_store(pg_url) as s:
        run_id = _run(s)
        s.record_sample(_sample(run_id, "p0", completion="first"))
        with pytest.raises(StoreError, match="already completed"):
            s.record_sample(_sample(run_id, "p0", completion="second"))
        with pytest.raises(StoreError, match="already completed"):
            s.record_sample(_sample(run_id, "p0", error="a later failure"))
        (sample,) = s.samples(run_id)
        assert (sample.completion, sample.error) == ("first", None)


def test_the_password_never_appears_in_a_message_or_repr(pg_server, pg_url):
    secret = "s3cr3t-Pw"
    with_password = pg_url.replace("postgres@", f"postgres:{secret}@")  # trust auth: accepted, unchecked
    with open_store(with_password) as s:
        assert secret not in repr(s) and secret not in s.location and "postgres:***@" in s.location
        with pytest.raises(StoreError) as caught:
            s.get_run("nope")
        assert secret not in str(caught.value) and "***" in str(caught.value)
    missing = with_password.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(StoreError, match="no such database") as caught:
        open_store(missing)
    assert secret not in str(caught.value)
    result = runner.invoke(app, ["runs", "list", "--store", missing])
    assert result.exit_code == 1 and secret not in result.output and "no such database" in result.output


def test_an_unreachable_server_or_a_bad_url_gives_a_clear_error():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    url = f"postgresql://me:hunter22@127.0.0.1:{port}/refute"
    with pytest.raises(StoreError, match=f"cannot reach PostgreSQL at 127.0.0.1:{port}") as caught:
        open_store(url)
    assert "check the URL or start the server" in str(caught.value) and "hunter22" not in str(caught.value)
    with pytest.raises(ConfigError, match="port is not a number"):
        open_store("postgresql://me:hunter22@127.0.0.1:http/refute")
    result = runner.invoke(app, ["runs", "list", "--store", url])
    assert result.exit_code == 1 and "cannot reach PostgreSQL" in result.output and "hunter22" not in result.output


def test_a_missing_psycopg_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "psycopg", None)
    with pytest.raises(ConfigError, match=r"pip install 'refute\[postgres\]'"):
        open_store("postgresql://db.lab/refute")


def _fill(s: Store) -> tuple[str, str]:
    parent = _run(s, name="attack")
    child = _run(s, parent_id=parent, role="capability", name="control")
    for run_id in (parent, child):
        ids = [s.record_sample(_sample(run_id, f"p{i}", completion=f"reply {i}"),
                               [ScoreRecord(scorer="refusal", scorer_version="1", value=i % 2, label=str(i))])
               for i in range(4)]
        s.record_sample(_sample(run_id, "bad", error="boom"))
        s.queue_labels(run_id, "refusal", 3, [(ids[1], "refusal"), (ids[2], "compliance")])
        s.save_label(run_id, ids[1], "refusal", "full_refusal", "ann")
        s.save_calibration(CalibrationRecord(run_id=run_id, scorer="refusal", scorer_version="1", n_labels=2,
                                             sensitivity_counts=(1, 0), specificity_counts=(1, 0),
                                             labels_path="l", labels_sha256="b" * 64))
    return parent, child


def _export(s: Store) -> dict[str, Any]:
    """Every run with its rows, sample ids replaced by the sample's key."""
    def key(run_id: str, sample_id: int) -> str:
        return s._read("SELECT prompt_id FROM samples WHERE id = ?", (sample_id,))[0][0] + f"@{run_id}"

    return {run.id: {
        "run": run.model_dump(),
        "rows": [{k: v for k, v in row.items() if k not in ("id",)} for row in run_rows(s, run.id)],
        "labels": [(key(run.id, lab.sample_id), lab.label, lab.labeller) for lab in s.labels(run.id)],
        "queue": [(key(run.id, q.sample_id), q.position, q.scorer_label, q.label) for q in s.label_queue(run.id)],
        "calibrations": [c.model_dump() for c in s.calibrations(run.id)],
    } for run in s.list_runs()}


def test_store_copy_round_trip_sqlite_postgresql_sqlite_keeps_every_row(tmp_path, pg_url):
    first, back = tmp_path / "first.db", tmp_path / "back.db"
    with Store(first) as s:
        _fill(s)
        original = _export(s)
    assert len(original) == 2 and all(len(r["rows"]) == 5 and r["labels"] for r in original.values())
    there = runner.invoke(app, ["store", "copy", str(first), pg_url])
    assert there.exit_code == 0 and "2 run(s) copied" in there.output and "10 sample(s)" in there.output, there.output
    home = runner.invoke(app, ["store", "copy", pg_url, str(back)])
    assert home.exit_code == 0, home.output
    with open_store(pg_url) as pg:
        assert _export(pg) == original
    with Store(back) as s:
        assert _export(s) == original
    again = runner.invoke(app, ["store", "copy", str(first), pg_url])
    assert again.exit_code == 0 and "0 run(s) copied" in again.output and "2 skipped" in again.output, again.output


def test_store_copy_skips_a_different_run_unless_replace_and_brings_a_runs_parent(tmp_path, pg_url):
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    with Store(src) as s:
        parent, child = _fill(s)
    with Store(src) as s, Store(dst) as d:
        report = copy_runs(s, d, [child[:6]])  # a prefix; the parent comes first
        assert report.copied == [parent, child] and report.samples == 10
        s.record_sample(_sample(child, "late"))
        report = copy_runs(s, d)
        assert report.copied == [] and [r for r, _ in report.skipped] == [parent, child]
        assert "different" in report.skipped[1][1] and d.sample_counts(child) == (4, 1)
        report = copy_runs(s, d, replace=True)
        assert report.replaced == [parent, child] and d.sample_counts(child) == (5, 1)
        assert _export(d) == _export(s)
        s.record_sample(_sample(child, "bad", completion="fixed on resume"))  # the failed sample, done in place
        assert s.sample_counts(child) == (6, 0)
        report = copy_runs(s, d)  # the same number of rows, but not the same run
        assert [r for r, _ in report.skipped] == [parent, child] and "different" in report.skipped[1][1]
        assert copy_runs(s, d, replace=True).replaced == [parent, child] and d.sample_counts(child) == (6, 0)
        with pytest.raises(ConfigError, match="same store"):
            copy_runs(s, s)
    assert sqlite3.connect(dst).execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 11
    orphan = tmp_path / "orphan.db"
    with Store(orphan) as o:
        parent, child = _fill(o)
    db = sqlite3.connect(orphan)
    db.execute("PRAGMA foreign_keys=OFF")
    db.execute("DELETE FROM runs WHERE id = ?", (parent,))  # a store whose parent run was removed by hand
    db.commit()
    db.close()
    with Store(orphan) as o, Store(tmp_path / "out.db") as d, pytest.raises(ConfigError, match="parent run"):
        copy_runs(o, d)
