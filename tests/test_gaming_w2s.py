"""Weak-to-strong (refute.gaming ``weak-to-strong``): PGR arithmetic by hand, splits, the pipeline on
synthetic activations with a known answer, and the experiment end to end on a tiny random model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from refute.errors import ConfigError, DatasetError
from refute.gaming import Context, parse_settings, run_experiment
from refute.gaming._w2s import load_task, mean_figure, pgr, pgr_summary, run_seed, split_abc
from refute.store import Store

# --- the arithmetic -------------------------------------------------------------------------------


def test_pgr_hand_computed():
    assert pgr(0.6, 0.9, 0.8) == pytest.approx(2 / 3)
    assert pgr(0.6, 0.9, 0.9) == pytest.approx(1.0)
    assert pgr(0.6, 0.9, 0.6) == pytest.approx(0.0)
    assert pgr(0.6, 0.9, 0.5) == pytest.approx(-1 / 3)  # the student is worse than its supervisor
    assert pgr(0.6, 0.9, 0.95) == pytest.approx(7 / 6)  # and better than its ceiling


def test_pgr_is_nan_when_the_gap_is_degenerate():
    assert math.isnan(pgr(0.7, 0.7, 0.8))
    assert math.isnan(pgr(0.8, 0.7, 0.75))  # the ceiling below the supervisor
    assert math.isnan(pgr(0.70, 0.72, 0.71, min_gap=0.05))
    assert pgr(0.70, 0.76, 0.73, min_gap=0.05) == pytest.approx(0.5)


def test_mean_figure_is_a_t_interval():
    f = mean_figure([0.6, 0.7, 0.8])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (f.value, f.low, f.high, f.n) == (pytest.approx(0.7), pytest.approx(0.7 - half),
                                             pytest.approx(0.7 + half), 3)
    assert mean_figure([0.9, 1.0, 1.0]).high == 1.0  # clipped: accuracies
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        mean_figure([0.5])


def test_pgr_over_seeds_is_the_ratio_of_mean_accuracies():
    s = pgr_summary([0.6] * 5, [0.9] * 5, [0.8] * 5, n_boot=200)
    assert s.figure is not None and s.figure.value == pytest.approx(2 / 3)
    assert s.figure.low == pytest.approx(2 / 3) and s.figure.high == pytest.approx(2 / 3)
    assert s.gap.value == pytest.approx(0.3)
    # seed 1 recovers 0.3 / 0.4 = 0.75, seed 2 recovers 0 / 0.2 = 0: the mean of ratios would be 0.375;
    # the ratio of means is (0.75 - 0.6) / (0.9 - 0.6) = 0.5
    s = pgr_summary([0.5, 0.7], [0.9, 0.9], [0.8, 0.7], n_boot=500)
    assert s.figure is not None and s.figure.value == pytest.approx(0.5)
    assert s.figure.low <= 0.5 <= s.figure.high and s.figure.n == 2


def test_pgr_over_seeds_refuses_a_gap_near_zero():
    s = pgr_summary([0.80, 0.81, 0.79], [0.81, 0.82, 0.80], [0.9, 0.9, 0.9], n_boot=200)
    assert s.figure is None and "min_gap" in s.problem
    assert s.gap.value == pytest.approx(0.01)
    # the mean gap passes (0.06) but many resamples of seeds do not: the interval is unbounded
    s = pgr_summary([0.5] * 5, [0.8, 0.8, 0.3, 0.4, 0.5], [0.6] * 5, n_boot=500)
    assert s.figure is None and "unbounded" in s.problem


# --- splits and one seed ---------------------------------------------------------------------------


def test_splits_are_stratified_disjoint_and_reproducible():
    labels = np.array([0] * 60 + [1] * 40)
    a, b, c = split_abc(labels, (0.3, 0.4, 0.3), seed=3)
    a2, b2, c2 = split_abc(labels, (0.3, 0.4, 0.3), seed=3)
    assert all(np.array_equal(x, y) for x, y in ((a, a2), (b, b2), (c, c2)))
    assert sorted(np.concatenate([a, b, c]).tolist()) == list(range(100))
    assert (int((labels[a] == 1).sum()), int((labels[b] == 1).sum()), int((labels[c] == 1).sum())) == (12, 16, 12)
    assert (a.size, b.size, c.size) == (30, 40, 30)
    assert not np.array_equal(split_abc(labels, (0.3, 0.4, 0.3), seed=4)[0], a)
    with pytest.raises(ConfigError, match="one label only"):
        split_abc(np.array([0] * 20 + [1] * 2), (0.3, 0.4, 0.3), seed=0)


def _synthetic(imitable: bool, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels; strong features with a salient, separable label direction; a weak view whose label
    signal is faint (accuracy about 0.7). With ``imitable`` the weak view's noise is also a strong
    feature, so a student can copy the supervisor's mistakes; otherwise they look random to it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sign = 2.0 * y - 1.0
    noise = rng.standard_normal((n, 4))  # (N, 4)
    weak = np.column_stack([0.5 * sign + noise[:, 0], noise[:, 1:]])  # (N, 4)
    strong = rng.standard_normal((n, 16))  # (N, 16)
    strong[:, 0] += 3.0 * sign
    if imitable:
        strong[:, 1:5] = 3.0 * noise  # the supervisor's noise, louder than the label
    return y, strong, weak


def test_pipeline_recovers_the_gap_when_the_weak_errors_are_random_to_the_student():
    y, strong, weak = _synthetic(imitable=False)
    runs = [run_seed(strong, weak, y, s, weak_dims=4, l2=1.0) for s in range(5)]
    w, c = (np.mean([getattr(r, k) for r in runs]) for k in ("weak", "ceiling"))
    assert 0.6 < w < 0.8 and c > 0.97
    assert np.mean([r.weak_label_accuracy for r in runs]) == pytest.approx(w, abs=0.05)
    # label noise independent of the student's features hurts it less than it hurt the supervisor
    summary = pgr_summary(*([getattr(r, k) for r in runs] for k in ("weak", "ceiling", "w2s")), n_boot=300)
    assert summary.figure is not None and 0.6 < summary.figure.value < 0.95 and summary.figure.low > 0.5


def test_pipeline_imitates_weak_errors_the_student_can_represent():
    y, strong, weak = _synthetic(imitable=True)
    runs = [run_seed(strong, weak, y, s, weak_dims=4, l2=1.0) for s in range(5)]
    w, c, s = (np.mean([getattr(r, k) for r in runs]) for k in ("weak", "ceiling", "w2s"))
    assert c > 0.97
    assert -0.2 < pgr(w, c, s) < 0.2  # the student reproduces its supervisor's mistakes


def test_run_seed_is_reproducible():
    y, strong, weak = _synthetic(imitable=True, n=300)
    assert run_seed(strong, weak, y, 7) == run_seed(strong, weak, y, 7)
    assert run_seed(strong, weak, y, 7, aux_loss=0.5) == run_seed(strong, weak, y, 7, aux_loss=0.5)


def test_aux_loss_lets_the_student_overrule_weak_errors_it_cannot_represent():
    """Burns et al.'s auxiliary confidence loss: where the supervisor's mistakes look random to the
    student, pulling the student towards its own confident predictions fixes some of them."""
    y, strong, weak = _synthetic(imitable=False)
    plain = [run_seed(strong, weak, y, s, weak_dims=4, l2=1.0) for s in range(5)]
    aux = [run_seed(strong, weak, y, s, weak_dims=4, l2=1.0, aux_loss=0.75) for s in range(5)]
    for p, a in zip(plain, aux, strict=True):
        # only the student changes: same split, supervisor, weak labels and ceiling
        assert (a.weak, a.ceiling, a.weak_label_accuracy, a.n_b) == (p.weak, p.ceiling, p.weak_label_accuracy, p.n_b)
        assert a.w2s > p.w2s  # on every seed (300 test texts: at least one more right)
    w2s_plain, w2s_aux = np.mean([r.w2s for r in plain]), np.mean([r.w2s for r in aux])
    assert w2s_aux - w2s_plain > 0.025  # about 0.94 -> 0.98
    ceiling = np.mean([r.ceiling for r in plain])
    assert w2s_aux > ceiling - 0.03  # close to the ceiling trained on ground truth


# --- tasks and settings ---------------------------------------------------------------------------


def test_shipped_tasks_are_balanced_and_limited():
    for name, n in (("sentiment", 400), ("cities", 200)):
        task = load_task(name)
        assert len(task.texts) == n and int(task.labels.sum()) == n // 2 and len(set(task.ids)) == n
    task = load_task("harmful-vs-benign", limit=100)
    assert len(task.texts) == 100 and int(task.labels.sum()) == 50
    assert load_task("sentiment", limit=31).labels.tolist().count(1) == 15


def test_user_tasks_and_their_errors(tmp_path: Path):
    good = tmp_path / "mine.jsonl"
    good.write_text('{"text": "a", "label": 1}\n\n{"text": "b", "label": false, "id": "x"}\n')
    task = load_task(str(good))
    assert (task.name, task.texts, task.labels.tolist(), task.ids) == ("mine", ["a", "b"], [1, 0], ["1", "x"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: field 'label'"):
        load_task(str(bad))
    with pytest.raises(ConfigError, match="unknown weak-to-strong task 'nope'"):
        load_task("nope")


def test_settings_are_validated():
    with pytest.raises(ConfigError, match="sum to 1"):
        parse_settings("weak-to-strong", {"fractions": [0.5, 0.5, 0.5]})
    with pytest.raises(ConfigError, match=r"settings\.layer"):
        parse_settings("weak-to-strong", {"layer": 3})
    assert parse_settings("weak-to-strong", {}).model_dump()["seeds"] == 10


# --- end to end on the tiny random model ----------------------------------------------------------


def _ctx(tmp_path: Path, backend) -> Context:
    return Context(store=Store(tmp_path / "refute.db"), out_dir=tmp_path / "out", models=lambda spec: backend,
                   progress=False)


def test_experiment_end_to_end_on_the_tiny_model(tmp_path: Path, tiny_backend):
    """The answer is known by construction. With the chat template the last prompt token is the
    template's assistant header, the same for every text, and the tiny Qwen2 model's resid_pre.0 is
    that token's embedding: the weak view is one point, so the supervisor labels every text alike and
    scores 0.5 on the balanced test split, and so does a student trained on its labels. Task 'mine'
    has two texts, one per label, which layer 1 tells apart: its ceiling is 1, so PGR is (0.5 - 0.5) /
    (1 - 0.5) = 0 on every seed. With min_gap 0.6 no task can pass (ceiling - weak <= 1 - 0.5)."""
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps({"text": f"the food was {'good' if i % 2 else 'bad'}", "label": i % 2})
                            + "\n" for i in range(40)))
    settings = {"tasks": [str(mine), "cities"], "seeds": 3, "limit": 40, "batch_size": 8, "n_boot": 200,
                "weak_dims": 4}
    ctx = _ctx(tmp_path, tiny_backend)
    result = run_experiment("weak-to-strong", settings, ctx)
    assert (ctx.out_dir / "result.json").exists()
    caches = sorted(ctx.out_dir.glob("w2s-*.npz"))
    assert len(caches) == 2
    for cache in caches:
        with np.load(cache) as f:
            assert f["strong"].shape == (40, 32) and f["weak"].shape == (40, 32) and f["labels"].shape == (40,)
            assert np.ptp(f["weak"], axis=0).max() == 0.0  # the construction: one weak point for all texts
    for task in ("mine", "cities"):
        for k in ("weak", "weak_to_strong"):
            f = result.figures[f"{task}.{k}"]
            assert (f.value, f.low, f.high, f.n) == (0.5, 0.5, 0.5, 3)
    f = result.figures["mine.ceiling"]
    assert (f.value, f.low, f.high, f.n) == (1.0, 1.0, 1.0, 3)
    p = result.figures["mine.pgr"]
    assert (p.value, p.low, p.high, p.n) == (0.0, 0.0, 0.0, 3)
    assert not any(n.startswith("mine: PGR undefined") for n in result.notes)
    assert result.tables[0].rows[0][0] == "mine" and result.tables[0].rows[0][-1] == p.text(3)
    saved = json.loads((ctx.out_dir / "w2s-seeds.json").read_text())
    assert saved["sites"] == ["resid_pre.1", "resid_pre.0"]
    assert [r["seed"] for r in saved["tasks"]["cities"]["seeds"]] == [0, 1, 2]
    assert result.tables[0].title.startswith("Weak-to-strong accuracy")
    assert len(result.tables[1].rows) == 6 and result.models == [tiny_backend.info.spec]
    # a second run reads the cached activations and gives the same figures
    again = run_experiment("weak-to-strong", settings, ctx)
    assert again.figures == result.figures
    assert sum("read from the cache" in n for n in again.notes) == 2
    # no task can recover a gap of min_gap 0.6: PGR is undefined for both, with the gap in the note
    strict = run_experiment("weak-to-strong", {**settings, "min_gap": 0.6}, ctx)
    assert not any(k.endswith(".pgr") for k in strict.figures)
    assert "mine: PGR undefined (the ceiling beats the weak supervisor by 0.500 on average, less than min_gap " \
           "0.6)." in strict.notes
    assert any(n.startswith("cities: PGR undefined (") for n in strict.notes)
    assert [row[-1] for row in strict.tables[0].rows] == ["undefined", "undefined"]


def test_experiment_refuses_served_models_and_missing_layers(tmp_path: Path, tiny_backend):
    class Served:
        pass

    with pytest.raises(ConfigError, match="must be a local hf model"):
        run_experiment("weak-to-strong", {"seeds": 2}, _ctx(tmp_path, Served()))
    with pytest.raises(ConfigError, match="strong_layer 5 does not exist"):
        run_experiment("weak-to-strong", {"strong_layer": 5}, _ctx(tmp_path, tiny_backend))


@pytest.mark.slow
def test_the_strong_ceiling_beats_the_weak_probe_on_the_real_model(tmp_path: Path, default_backend):
    """On the real model the residual stream at layer 12 separates the classes better than a small
    projection of layer 10, so both tasks separate weak from strong and PGR has an interval."""
    result = run_experiment("weak-to-strong", {"tasks": ["sentiment", "harmful-vs-benign"], "limit": 160,
                                               "seeds": 5}, _ctx(tmp_path, default_backend))
    f = result.figures
    assert f["sentiment.ceiling"].value > 0.9 and f["sentiment.ceiling"].low > f["sentiment.weak"].high
    assert f["harmful-vs-benign.ceiling"].value > 0.85
    assert f["harmful-vs-benign.ceiling"].low > f["harmful-vs-benign.weak"].value
    assert "sentiment.pgr" in f and "harmful-vs-benign.pgr" in f
