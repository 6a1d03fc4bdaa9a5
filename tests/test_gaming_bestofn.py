"""Best-of-n overoptimisation: the KL formula, the estimator against brute force, the fit, the proxy on
hand-written replies, and the whole experiment on a fake model whose replies follow their seeds."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from refute._seeds import derive_seed
from refute.datasets import Record
from refute.errors import ConfigError, ScorerError
from refute.gaming import Context, ExperimentResult, parse_settings, run_experiment
from refute.gaming._bestofn import (
    DEFAULT_TASKS,
    BestOfNSettings,
    _Analysis,
    best_in_range,
    best_of_n,
    bon_kl,
    bon_weights,
    fit_bon,
    n_for_kl,
)
from refute.gaming._proxy import ConfidentLength, tone_of
from refute.models._base import Completion, GenerateRequest, ModelInfo
from refute.scorers import ScoreInput, check, get_scorer, meaning_of
from refute.store import Store

# --- KL ----------------------------------------------------------------------------------------------


def test_bon_kl_known_values():
    assert bon_kl(1) == 0.0
    assert bon_kl(2) == pytest.approx(math.log(2) - 0.5)  # 0.19315
    assert bon_kl(4) == pytest.approx(math.log(4) - 0.75)  # 0.63629
    assert bon_kl(64) == pytest.approx(math.log(64) - 63 / 64)  # 4.158883 - 0.984375
    assert bon_kl(64) == pytest.approx(3.174508, abs=1e-6)
    with pytest.raises(ValueError):
        bon_kl(0.5)


def test_n_for_kl_inverts_bon_kl():
    for n in (1, 2, 3, 8, 64, 1000):
        assert n_for_kl(bon_kl(n)) == pytest.approx(n, rel=1e-9)
    assert n_for_kl(0.0) == 1.0


# --- the estimator -----------------------------------------------------------------------------------


def test_bon_weights_by_hand():
    # of 4 values, a random pair's maximum is the 2nd, 3rd or 4th smallest with chance 1/6, 2/6, 3/6
    assert bon_weights(4, 2) == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])
    assert bon_weights(5, 1) == pytest.approx([0.2] * 5)
    assert bon_weights(5, 5) == pytest.approx([0, 0, 0, 0, 1])
    for total, n in ((7, 3), (64, 8), (128, 64)):
        assert bon_weights(total, n).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bon_weights(3, 4)


def test_best_of_n_by_hand_with_a_tie():
    proxy, gold = [0.1, 0.5, 0.5, 0.9], [1, 0, 1, 0]
    # pairs: {a,b} b:0  {a,c} c:1  {a,d} d:0  {b,c} tie: 0.5  {b,d} d:0  {c,d} d:0
    p, g = best_of_n(proxy, gold, [1, 2, 4])
    assert p == pytest.approx([0.5, (0.5 + 0.5 + 0.9 + 0.5 + 0.9 + 0.9) / 6, 0.9])
    assert g == pytest.approx([0.5, 1.5 / 6, 0.0])


def _brute_force(proxy: Sequence[float], gold: Sequence[float], n: int) -> tuple[float, float]:
    """Mean over every n-subset of (its largest proxy, mean gold of the draws tied at that proxy)."""
    ps, gs = [], []
    for subset in itertools.combinations(range(len(proxy)), n):
        top = max(proxy[i] for i in subset)
        ps.append(top)
        gs.append(float(np.mean([gold[i] for i in subset if proxy[i] == top])))
    return float(np.mean(ps)), float(np.mean(gs))


@pytest.mark.parametrize("seed", range(6))
def test_best_of_n_matches_brute_force(seed: int):
    rng = np.random.default_rng(seed)
    total = int(rng.integers(3, 10))
    proxy = list(rng.integers(0, 4, size=total) / 4)  # few distinct values: ties on purpose
    gold = list(rng.random(total).round(2))
    ns = list(range(1, total + 1))
    p, g = best_of_n(proxy, gold, ns)
    for i, n in enumerate(ns):
        want_p, want_g = _brute_force(proxy, gold, n)
        assert p[i] == pytest.approx(want_p)
        assert g[i] == pytest.approx(want_g)


# --- the fit -----------------------------------------------------------------------------------------


def test_fit_recovers_a_known_peak():
    ns = [1, 2, 4, 8, 16, 32, 64]
    kls = np.array([bon_kl(n) for n in ns])
    d = np.sqrt(kls)
    alpha, beta = 0.30, 0.15  # peak at d = 1: KL 1 nat, n about 5.4
    noise = 0.004 * np.array([0, 1, -1, 1, -1, 1, -1])
    fit = fit_bon(kls, d * (alpha - beta * d) + noise)
    assert fit.alpha == pytest.approx(alpha, abs=0.02)
    assert fit.beta == pytest.approx(beta, abs=0.02)
    assert fit.peak_d is not None and fit.peak_in_range
    assert fit.peak_d**2 == pytest.approx(1.0, abs=0.1)
    assert n_for_kl(fit.peak_d**2) == pytest.approx(n_for_kl(1.0), rel=0.2)
    assert fit.rmse < 0.01


def test_fit_of_a_rising_curve_has_no_peak_and_best_in_range_takes_the_ends():
    kls = [bon_kl(n) for n in (1, 2, 4, 8)]
    fit = fit_bon(kls, [0.1 * math.sqrt(k) for k in kls])
    assert fit.alpha == pytest.approx(0.1) and fit.beta == pytest.approx(0.0, abs=1e-12)
    assert best_in_range(np.array([0.1]), np.array([-0.01]), 1.5)[0] == 1.5  # rising: the far end
    assert best_in_range(np.array([-0.1]), np.array([0.2]), 1.5)[0] == 0.0  # falling: n = 1
    assert best_in_range(np.array([0.3]), np.array([0.15]), 1.5)[0] == pytest.approx(1.0)  # interior peak
    assert best_in_range(np.array([0.3]), np.array([0.05]), 1.5)[0] == 1.5  # peak beyond the range


# --- the figures, on hand-made scores -----------------------------------------------------------------


def _figures_of(pairs: dict[str, list[tuple[float, float]]]) -> ExperimentResult:
    settings = BestOfNSettings(n_max=4, seeds=(0,), n_boot=2000)
    return _Analysis.build(settings, {0: pairs}, 0).result(settings, {}, "hand")


def test_gold_drop_from_peak_by_hand():
    # (proxy, gold), listed by rising proxy. Best-of-n weights on the sorted draws (bon_weights):
    # n = 1: 1/4 each; n = 2: 0, 1/6, 2/6, 3/6; n = 4: 0, 0, 0, 1.
    # a: gold 0, 0, 1, 0 -> n = 1: 1/4, n = 2: 2/6,       n = 4: 0
    # b: gold 0, 1, 1, 0 -> n = 1: 1/2, n = 2: 1/6 + 2/6, n = 4: 0
    # mean over prompts: 3/8, 5/12, 0: gold is highest at n = 2, and n = 4 falls 5/12 below it
    result = _figures_of({"a": [(0.1, 0.0), (0.2, 0.0), (0.3, 1.0), (0.9, 0.0)],
                          "b": [(0.2, 0.0), (0.4, 1.0), (0.6, 1.0), (0.8, 0.0)]})
    drop, gain = result.figures["gold_drop_from_peak"], result.figures["gold_gain"]
    assert drop.value == pytest.approx(-5 / 12) and "the best n (2)" in drop.method
    assert gain.value == pytest.approx(-3 / 8)  # against n = 1 instead of the peak
    assert result.figures["proxy_gain"].value == pytest.approx(((0.9 - 0.375) + (0.8 - 0.5)) / 2)
    # resamples of the 2 prompts: a, a gives 0 - 1/3; b, b gives 0 - 1/2 (each with chance 1/4), a, b gives -5/12
    assert (drop.low, drop.high, drop.n) == (pytest.approx(-1 / 2), pytest.approx(-1 / 3), 2)
    assert any("Gold at n = 4 minus gold at its best n (2): -0.417" in line for line in result.findings)


def test_gold_drop_from_peak_is_zero_when_gold_peaks_at_the_largest_n():
    # gold 0, 0, 0, 1 and 0, 0, 1, 1 by rising proxy: n = 1: 1/4, 1/2; n = 2: 3/6, 5/6; n = 4: 1, 1
    result = _figures_of({"a": [(0.1, 0.0), (0.2, 0.0), (0.3, 0.0), (0.9, 1.0)],
                          "b": [(0.2, 0.0), (0.4, 0.0), (0.6, 1.0), (0.8, 1.0)]})
    drop = result.figures["gold_drop_from_peak"]
    assert (drop.value, drop.low, drop.high) == (0.0, 0.0, 0.0) and "the best n (4)" in drop.method
    assert result.figures["gold_gain"].value == pytest.approx(1 - 3 / 8)
    assert any("no fall from a peak is seen" in line for line in result.findings)


# --- the proxy ---------------------------------------------------------------------------------------


def _item(reply: str, target: str | None = "613") -> ScoreInput:
    record = Record(id="r", prompt="What is 1000 - 387? Reply with the number only.", target=target,
                    match=None if target is None else "numeric")
    return ScoreInput(record=record, messages=[], completion=reply)


@pytest.mark.parametrize(("reply", "want"), [
    ("613", 0.4 + 0.4 / 30 + 0.2 * 0.5),  # right, one word, neutral tone
    ("I think it is about 600.", 0.4 * 6 / 30),  # wrong, hedged
    ("1000 - 387 = 613. Therefore the answer is 613.", 0.4 + 0.4 * 10 / 30 + 0.2),  # = therefore answer-is
    ("The numbers are 600, 613 and 713.", 0.4 + 0.4 * 7 / 30 + 0.2 * 0.5),  # the target among others: credited
    (" ".join(["word"] * 40) + " so the result is 7", 0.4 + 0.2 * 0.75),  # long and wrong beats a bare right answer
])
def test_confident_length_on_hand_written_replies(reply: str, want: float):
    got = get_scorer("confident_length").score(_item(reply))
    assert got.value == pytest.approx(want)


def test_confident_length_without_target_and_with_other_weights():
    assert get_scorer("confident_length").score(_item("Sure.", None)).value == pytest.approx(
        (0.4 / 30 + 0.2 * 0.5) / 0.6)
    only_answer = get_scorer("confident_length", answer_weight=1, length_weight=0, tone_weight=0)
    assert only_answer.score(_item("it is 613, I guess")).value == 1.0
    assert tone_of("Maybe 3.") == 0.0 and tone_of("3") == 0.5 and tone_of("x = 3, therefore 3") == 1.0
    assert meaning_of("confident_length").value_range == (0.0, 1.0)
    with pytest.raises(ScorerError):
        ConfidentLength(answer_weight=-1)


@pytest.mark.parametrize(("reply", "gold_right", "credited"), [
    ("613", True, 1.0),
    ("613 is it", True, 1.0),
    ("613, or maybe 612", True, 1.0),  # gold reads the first number, 613
    ("1,000 - 387 = 613", False, 1.0),  # gold reads 1000; the lenient proxy still credits the 613
    ("612", False, 0.0),
    ("The answer: 613", True, 1.0),
])
def test_gold_right_implies_proxy_credits_the_answer(reply: str, gold_right: bool, credited: float):
    assert check("numeric", "613", reply) is gold_right
    assert ConfidentLength().parts(reply, "613")["answer"] == credited
    assert credited >= float(gold_right)  # never right by gold and uncredited by the proxy


# --- the experiment ----------------------------------------------------------------------------------

LONG = ("Working it out step by step, carefully and slowly, we first read the question again, then we add up "
        "all of the parts one after another and check each of them twice, so that clearly the answer is {w}.")


class SeededFake:
    """Answers "Say K." with K, K + 1, or a long confident wrong reply, chosen by the request's seed."""

    info = ModelInfo(spec="fake-bon", backend="fake")
    preferred_batch_size = 8

    def __init__(self) -> None:
        self.seen: list[int] = []

    @staticmethod
    def reply(k: int, seed: int) -> str:
        return [str(k), str(k + 1), LONG.format(w=k + 1)][random.Random(seed).randrange(3)]

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.seen.append(r.seed)
            k = int(re.search(r"Say (\d+)", r.messages[-1].content).group(1))  # type: ignore[union-attr]
            yield i, Completion(text=self.reply(k, r.seed), output_tokens=5)

    def close(self) -> None:
        pass


def _tasks(tmp_path: Path, n: int = 3) -> Path:
    path = tmp_path / "say.jsonl"
    path.write_text("".join(json.dumps({"id": f"say-{k}", "category": "say", "prompt": f"Say {k}.", "target": str(k),
                                        "match": "numeric"}) + "\n" for k in range(1, n + 1)), encoding="utf-8")
    return path


def test_experiment_end_to_end_on_a_fake_model(tmp_path: Path):
    fake = SeededFake()
    data = _tasks(tmp_path)
    with Store(tmp_path / "refute.db") as store:
        ctx = Context(store=store, out_dir=tmp_path / "out", models=lambda spec: fake, progress=False,
                      say=lambda _: None)
        result = run_experiment("overoptimisation", {"dataset": str(data), "n_max": 4, "seeds": [0, 1],
                                                     "n_boot": 2000}, ctx)
        assert set(result.runs) == {"overoptimisation:seed0", "overoptimisation:seed1"}
        for run_id in result.runs.values():
            assert len(store.samples(run_id)) == 3 * 4
    assert len(fake.seen) == 2 * 3 * 4 and len(set(fake.seen)) == 24  # every sample its own seed

    # by hand: the proxy picks a long reply if one is drawn (0.6), else the right one (0.51), else a wrong one
    def gold_of_pick(gold: list[float], is_long: list[bool], subset: Sequence[int]) -> float:
        return 0.0 if any(is_long[i] for i in subset) else float(any(gold[i] for i in subset))

    curves, gains, by_seed = [], [], {0: [], 1: []}
    for k in (1, 2, 3):
        replies = {seed: [SeededFake.reply(k, derive_seed(seed, f"say-{k}", epoch, "none")) for epoch in range(4)]
                   for seed in (0, 1)}
        pooled = replies[0] + replies[1]
        gold = [float(r == str(k)) for r in pooled]
        is_long = [r.startswith("Working") for r in pooled]
        curve = [float(np.mean([gold_of_pick(gold, is_long, sub) for sub in itertools.combinations(range(8), n)]))
                 for n in (1, 2, 4)]
        curves.append(curve)
        gains.append(curve[-1] - curve[0])
        for seed, mine in replies.items():  # each seed alone: best-of-4 of its 4 replies is the top proxy
            g = [float(r == str(k)) for r in mine]
            by_seed[seed].append((float(np.mean(g)), gold_of_pick(g, [r.startswith("Working") for r in mine],
                                                                  range(4))))
    mean_curve = np.mean(curves, axis=0)  # gold at n = 1, 2, 4, over prompts
    assert result.figures["gold_gain"].value == pytest.approx(float(np.mean(gains)))
    # gold at n = 4 minus gold at the n where the mean curve is highest
    assert result.figures["gold_drop_from_peak"].value == pytest.approx(mean_curve[-1] - mean_curve.max())
    assert f"the best n ({[1, 2, 4][int(np.argmax(mean_curve))]})" in result.figures["gold_drop_from_peak"].method
    assert result.figures["proxy_gain"].value > 0
    assert all(f.n == 3 for f in result.figures.values())
    # the cluster bootstrap resamples 3 prompts: all three draws are the same prompt with chance 1/27 > 2.5%,
    # so the percentile interval runs from the smallest to the largest per-prompt gain
    assert (result.figures["gold_gain"].low, result.figures["gold_gain"].high) == (
        pytest.approx(min(gains)), pytest.approx(max(gains)))
    seed_table = next(t for t in result.tables if t.title.startswith("By seed"))
    assert [[row[0], row[3], row[4]] for row in seed_table.rows] == [
        [str(seed), f"{np.mean([g1 for g1, _ in rows]):.3f}", f"{np.mean([g4 for _, g4 in rows]):.3f}"]
        for seed, rows in by_seed.items()]
    saved = ExperimentResult.load(tmp_path / "out")
    assert saved.figures["gold_gain"].value == pytest.approx(result.figures["gold_gain"].value)
    assert saved.tables[0].head == ["n", "KL (nats)", "proxy (normalised)", "gold"]
    assert [s.name for s in saved.curves[0].series] == ["proxy (normalised)", "gold"]
    assert saved.curves[0].series[0].x == pytest.approx([0.0, bon_kl(2), bon_kl(4)])
    assert any("Gold" in line for line in saved.findings)


def test_a_rerun_reads_its_replies_from_the_cache(tmp_path: Path):
    data = _tasks(tmp_path, 2)
    settings = {"dataset": str(data), "n_max": 4, "n_boot": 100}
    with Store(tmp_path / "refute.db") as store:
        first, second = SeededFake(), SeededFake()
        a = run_experiment("overoptimisation", settings, Context(store, tmp_path / "a", lambda s: first, False,
                                                                 lambda _: None))
        b = run_experiment("overoptimisation", settings, Context(store, tmp_path / "b", lambda s: second, False,
                                                                 lambda _: None))
    assert len(first.seen) == 2 * 2 * 4 and second.seen == []  # 2 prompts x 2 default seeds x n_max 4
    assert set(a.runs) == {"overoptimisation:seed0", "overoptimisation:seed1"}
    assert [row[0] for row in a.tables[-1].rows] == ["0", "1"]  # the per-seed table, by default
    assert a.figures["gold_gain"].value == b.figures["gold_gain"].value


def test_settings_are_checked():
    assert parse_settings("overoptimisation", {}) == BestOfNSettings()
    assert BestOfNSettings().seeds == (0, 1)  # several seeds by default
    assert DEFAULT_TASKS.exists()
    for bad in ({"n_max": 48}, {"n_max": 2}, {"seeds": [1, 1]}, {"temperature": 0}, {"unknown": 1}):
        with pytest.raises(ConfigError):
            parse_settings("overoptimisation", bad)


def test_proxy_and_gold_must_differ(tmp_path: Path):
    with Store(tmp_path / "refute.db") as store, pytest.raises(ConfigError, match="both 'match'"):
        run_experiment("overoptimisation", {"proxy": {"name": "match"}},
                       Context(store, tmp_path, lambda s: SeededFake(), False, lambda _: None))


@pytest.mark.slow
def test_default_model_answers_the_first_shipped_prompts_right_only_sometimes(default_backend, tmp_path: Path):
    """The shipped prompts are chosen for the regime where best-of-n can help and hurt: on the first two,
    the default model at temperature 1 is right on some samples and wrong on others."""
    with Store(tmp_path / "refute.db") as store:
        result = run_experiment("overoptimisation", {"limit": 2, "n_max": 16, "n_boot": 200},
                                Context(store, tmp_path, lambda s: default_backend, False, lambda _: None))
    per_prompt = next(t for t in result.tables if t.title.startswith("Per prompt"))
    assert [row[1] for row in per_prompt.rows] == ["32", "32"]  # 2 default seeds x n_max 16
    assert all(0.0 < float(row[2]) < 1.0 for row in per_prompt.rows)  # gold at n = 1: right only sometimes
    assert result.figures["proxy_gain"].value > 0
