"""Re-scoring a stored run: new labels for old samples, no new generation.

`rescore_run` reads a run's completed samples, rebuilds each sample's dataset record from the run's
stored task configuration (falling back to the prompt in the stored transcript when the dataset
cannot be loaded or has changed), scores them (in batches for scorers with ``score_batch``, such as
judges) and writes one `ScoreRecord` per sample with `Store.record_scores`. A sample's earlier
score by the same scorer name is replaced, and its new ``scorer_version`` says which version
labelled it. Samples themselves are never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from refute.datasets import load_dataset
from refute.datasets._record import Record
from refute.errors import RefuteError
from refute.scorers._base import Score, ScoreInput, Scorer, to_record
from refute.store import SampleRecord, ScoreRecord, Store

__all__ = ["rescore_run"]


def _records(store: Store, run_id: str) -> dict[str, Record]:
    """The run's dataset records by id, or {} when the dataset cannot be rebuilt as it was."""
    run = store.get_run(run_id)
    try:
        cfg = run.config
        dataset = load_dataset(cfg["dataset"], adapter=cfg.get("dataset_adapter"),
                               columns=cfg.get("dataset_columns"), limit=cfg.get("limit"))
    except (RefuteError, KeyError, OSError):
        return {}
    if dataset.content_hash != run.dataset_hash:
        return {}
    return {r.id: r for r in dataset.records}


def _item(sample: SampleRecord, records: dict[str, Record]) -> ScoreInput:
    record = records.get(sample.prompt_id)
    if record is None:
        users = [m["content"] for m in sample.messages if m.get("role") == "user"]
        record = Record(id=sample.prompt_id, prompt=(users[0] if users else "") or "(unknown prompt)",
                        category=sample.category)
    return ScoreInput(record=record, messages=sample.messages, completion=sample.completion or "",
                      metadata=sample.metadata)


def _safe(scorer: Scorer, items: Sequence[ScoreInput]) -> list[Score]:
    batch: Callable[[Sequence[ScoreInput]], list[Score]] | None = getattr(scorer, "score_batch", None)
    try:
        if callable(batch):
            return list(batch(items))
        return [scorer.score(i) for i in items]
    except Exception:  # noqa: BLE001 - fall back to one at a time so one bad item costs one score
        out = []
        for i in items:
            try:
                out.append(scorer.score(i))
            except Exception as exc:  # noqa: BLE001 - recorded, not raised
                out.append(Score(None, "error", f"{type(exc).__name__}: {exc}"))
        return out


def rescore_run(store: Store, run_id: str, scorer: Scorer, *, batch_size: int = 64,
                progress: Callable[[int, int], None] | None = None) -> list[ScoreRecord]:
    """Score every completed sample of ``run_id`` with ``scorer``; returns the records written."""
    run = store.get_run(run_id)
    samples = [s for s in store.samples(run.id, include_errors=False) if s.id is not None]
    records = _records(store, run.id)
    written: list[ScoreRecord] = []
    for start in range(0, len(samples), max(1, batch_size)):
        chunk = samples[start:start + batch_size]
        scores = _safe(scorer, [_item(s, records) for s in chunk])
        rows = [to_record(scorer, sc).model_copy(update={"sample_id": s.id, "run_id": run.id})
                for s, sc in zip(chunk, scores, strict=True)]
        store.record_scores(run.id, rows)
        written += rows
        if progress is not None:
            progress(len(written), len(samples))
    return written
