"""The SQLite schema of the store. Bump SCHEMA_VERSION with every change and add a migration.

The PostgreSQL store's schema is not written out: `to_postgres` derives it from this text (and its
migrations), so the two cannot drift apart.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = 4

#: Tables whose rows are never updated or deleted (triggers refuse it).
APPEND_ONLY = ("findings", "finding_recipes", "finding_events")

#: A run's own calibration: a scorer's error on human labels of that run's replies.
_CALIBRATIONS = """
CREATE TABLE IF NOT EXISTS calibrations (
    run_id         TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    scorer         TEXT NOT NULL,
    scorer_version TEXT NOT NULL,
    n_labels       INTEGER NOT NULL,
    true_pos       INTEGER NOT NULL,
    false_neg      INTEGER NOT NULL,
    true_neg       INTEGER NOT NULL,
    false_pos      INTEGER NOT NULL,
    labels_path    TEXT NOT NULL,
    labels_sha256  TEXT NOT NULL,
    detail_json    TEXT NOT NULL DEFAULT '{}',
    created_at     TEXT NOT NULL,
    PRIMARY KEY (run_id, scorer)
);
"""

#: Findings (`refute finding`): the finding as measured, its reproduction recipe (kept apart: only
#: the vendor report reads it) and its event log (decisions, reviews, embargo overrides). All three
#: are append-only: triggers refuse every UPDATE and DELETE, so a signed decision cannot be edited,
#: only superseded by a new decision event.
_FINDINGS = """
CREATE TABLE IF NOT EXISTS findings (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    run_ids_json  TEXT NOT NULL,
    models_json   TEXT NOT NULL,
    sample_ids_json TEXT NOT NULL,
    evidence_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS finding_recipes (
    finding_id  TEXT PRIMARY KEY REFERENCES findings(id),
    recipe_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS finding_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    finding_id   TEXT NOT NULL REFERENCES findings(id),
    at           TEXT NOT NULL,
    actor        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    payload_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS finding_events_finding ON finding_events(finding_id, seq);
""" + "".join(
    f"""CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: append a new event instead'); END;
""" for table in APPEND_ONLY for verb in ("UPDATE", "DELETE"))

#: People's labels of a run's replies and the queue they label them in (`refute judge sample`
#: without --output, the viewer's label page). A queue belongs to a run and the refusal scorer or harm
#: judge whose verdicts stratified the draw (``scorer_label``: refusal / compliance, or harmful /
#: not_harmful); ``position`` orders it across draws. A label is keyed by the scorer
#: whose queue it came from ('' for a label made outside a queue): relabelling replaces the row.
_LABELS = """
CREATE TABLE IF NOT EXISTS label_queue (
    run_id       TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    scorer       TEXT NOT NULL,
    sample_id    INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    seed         INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    scorer_label TEXT NOT NULL CHECK (scorer_label IN ('refusal', 'compliance', 'harmful', 'not_harmful')),
    added_at     TEXT NOT NULL,
    PRIMARY KEY (run_id, scorer, sample_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS label_queue_order ON label_queue(run_id, scorer, position);
CREATE TABLE IF NOT EXISTS labels (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    sample_id   INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    scorer      TEXT NOT NULL DEFAULT '',
    label       TEXT NOT NULL CHECK (label IN ('full_compliance', 'full_refusal', 'partial_refusal',
                                               'harmful', 'not_harmful')),
    labeller    TEXT NOT NULL,
    labelled_at TEXT NOT NULL,
    PRIMARY KEY (run_id, sample_id, scorer)
);
CREATE INDEX IF NOT EXISTS labels_scorer ON labels(run_id, scorer, sample_id);
"""

#: The monitoring log of `refute serve`: one row per exchange, written in one transaction as the
#: response is produced. Replies of harmful exchanges are stored redacted (``redacted`` = 1) unless the
#: server ran with --log-unredacted; no header or API key is ever stored.
_EXCHANGES = """
CREATE TABLE IF NOT EXISTS exchanges (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at    TEXT NOT NULL,
    server_id     TEXT NOT NULL,
    model_spec    TEXT NOT NULL,
    stack_name    TEXT NOT NULL,
    stack_sha256  TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    stream        INTEGER NOT NULL,
    status        INTEGER NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('ok', 'flagged', 'blocked', 'error', 'upstream_error')),
    seed          INTEGER NOT NULL,
    messages_json TEXT NOT NULL,
    reply         TEXT NOT NULL,
    redacted      INTEGER NOT NULL,
    layers_json   TEXT NOT NULL,
    blocked_by    TEXT,
    total_ms      REAL NOT NULL,
    model_ms      REAL NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS exchanges_server ON exchanges(server_id, id);
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    name           TEXT,
    status         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    finished_at    TEXT,
    model_spec     TEXT NOT NULL,
    model_revision TEXT,
    model_json     TEXT NOT NULL,
    config_json    TEXT NOT NULL,
    versions_json  TEXT NOT NULL,
    dataset_name   TEXT NOT NULL,
    dataset_hash   TEXT NOT NULL,
    n_planned      INTEGER NOT NULL,
    pid            INTEGER,
    host           TEXT,
    proc_start     TEXT,
    parent_id      TEXT REFERENCES runs(id),
    role           TEXT
);
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_id);
CREATE TABLE IF NOT EXISTS samples (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id          TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    prompt_id       TEXT NOT NULL,
    category        TEXT NOT NULL,
    epoch           INTEGER NOT NULL,
    transform_chain TEXT NOT NULL,
    seed            INTEGER NOT NULL,
    messages_json   TEXT NOT NULL,
    completion      TEXT,
    input_tokens    INTEGER,
    output_tokens   INTEGER,
    latency_s       REAL,
    finish_reason   TEXT,
    cached          INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    metadata_json   TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    source          TEXT,
    truncated       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (run_id, prompt_id, epoch, transform_chain)
);
CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id);
CREATE TABLE IF NOT EXISTS scores (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id      INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    run_id         TEXT NOT NULL,
    scorer         TEXT NOT NULL,
    scorer_version TEXT NOT NULL,
    value          REAL,
    label          TEXT,
    explanation    TEXT,
    metadata_json  TEXT NOT NULL DEFAULT '{}',
    created_at     TEXT NOT NULL,
    UNIQUE (sample_id, scorer)
);
CREATE INDEX IF NOT EXISTS scores_run ON scores(run_id, scorer);
CREATE TABLE IF NOT EXISTS cache (
    key           TEXT PRIMARY KEY,
    completion    TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    latency_s     REAL NOT NULL,
    finish_reason TEXT,
    created_at    TEXT NOT NULL
);
""" + _CALIBRATIONS + _FINDINGS + _LABELS + _EXCHANGES

#: Statements that bring a store of the keyed version to the next one.
MIGRATIONS: dict[int, str] = {
    # v1 -> v2: runs record the process that drives them (a stale "running" run is detected) and
    # the run they belong to (a capability control's parent is its attack run), with its role;
    # samples record where their replies came from and whether the reply was cut at the size cap.
    # v1 cache keys did not name the endpoint, so a v1 cache cannot be trusted: it is emptied.
    # A run's own calibration (`refute judge validate --run`): a scorer's error measured on human
    # labels of that run's replies, one row per run and scorer.
    # Findings, their reproduction recipes and their append-only event logs (`refute finding`).
    1: """
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN proc_start TEXT;
ALTER TABLE runs ADD COLUMN parent_id TEXT REFERENCES runs(id);
ALTER TABLE runs ADD COLUMN role TEXT;
CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_id);
ALTER TABLE samples ADD COLUMN source TEXT;
ALTER TABLE samples ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
DELETE FROM cache;
""" + _CALIBRATIONS + _FINDINGS,
    # v2 -> v3: people's labels of a run's replies and the queue they label them in.
    2: _LABELS,
    # v3 -> v4: the monitoring log of `refute serve`, one row per exchange.
    3: _EXCHANGES,
}

#: Full-text search over samples (the viewer's search box): an FTS5 index of each sample's prompt
#: id, reply and transcript, kept by triggers, its text read from ``samples`` (external content,
#: so the text is not stored twice). Optional: a SQLite built without FTS5 has no index, and
#: readers fall back to LIKE. Created, and filled from the samples already there, on the first
#: writable open that finds it missing.
SEARCH_INDEX = """
CREATE VIRTUAL TABLE samples_fts USING fts5(prompt_id, completion, messages_json, content='samples',
                                            content_rowid='id');
CREATE TRIGGER samples_fts_insert AFTER INSERT ON samples BEGIN
  INSERT INTO samples_fts(rowid, prompt_id, completion, messages_json)
  VALUES (new.id, new.prompt_id, new.completion, new.messages_json);
END;
CREATE TRIGGER samples_fts_delete AFTER DELETE ON samples BEGIN
  INSERT INTO samples_fts(samples_fts, rowid, prompt_id, completion, messages_json)
  VALUES ('delete', old.id, old.prompt_id, old.completion, old.messages_json);
END;
CREATE TRIGGER samples_fts_update AFTER UPDATE OF prompt_id, completion, messages_json ON samples BEGIN
  INSERT INTO samples_fts(samples_fts, rowid, prompt_id, completion, messages_json)
  VALUES ('delete', old.id, old.prompt_id, old.completion, old.messages_json);
  INSERT INTO samples_fts(rowid, prompt_id, completion, messages_json)
  VALUES (new.id, new.prompt_id, new.completion, new.messages_json);
END;
INSERT INTO samples_fts(samples_fts) VALUES ('rebuild');
"""


_SQLITE_TRIGGER = re.compile(r"CREATE TRIGGER IF NOT EXISTS \w+ BEFORE \w+ ON \w+\s+BEGIN .*? END;\n", re.S)
_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")
_APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION refute_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% is append-only: append a new event instead', TG_TABLE_NAME; END $$;
"""


def to_postgres(sql: str) -> str:
    """``sql`` (`SCHEMA` or a migration) in PostgreSQL's dialect: 64-bit integers, double-precision
    reals, identity columns for AUTOINCREMENT keys, and the append-only triggers as plpgsql."""
    text = _SQLITE_TRIGGER.sub("", sql)
    text = text.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    text = re.sub(r"\bINTEGER\b", "BIGINT", text)
    text = re.sub(r"\bREAL\b", "DOUBLE PRECISION", text)
    guarded = [t for t in _TABLE.findall(sql) if t in APPEND_ONLY]
    if guarded:
        text += _APPEND_ONLY_FUNCTION + "".join(
            f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{table}_no_{verb.lower()}') THEN
    CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
      FOR EACH ROW EXECUTE FUNCTION refute_append_only();
  END IF;
END $$;
""" for table in guarded for verb in ("UPDATE", "DELETE"))
    return text


def tables(sql: str) -> list[str]:
    """The tables ``sql`` creates, in order."""
    return _TABLE.findall(sql)
