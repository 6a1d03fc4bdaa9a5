"""The SQLite schema of the store. Bump SCHEMA_VERSION with every change and add a migration."""

from __future__ import annotations

SCHEMA_VERSION = 1

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
    n_planned      INTEGER NOT NULL
);
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
"""
