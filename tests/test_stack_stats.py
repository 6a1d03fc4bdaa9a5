"""Defense in depth: layers alone against the stack measured, with known values and known dependence."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from itertools import product

import numpy as np
import pytest

from refute.errors import ConfigError
from refute.stats import StackStats, pareto_front, rate, stack_statistics

SVG = "{http://www.w3.org/2000/svg}"


def _latent_misses(rng: np.random.Generator, n: int, rho: float, thresholds: tuple[float, ...]) -> np.ndarray:
    """(n, k) misses: layer j misses when sqrt(rho) Z + sqrt(1 - rho) E_j < threshold_j (Z shared)."""
    z = rng.standard_normal((n, 1))
    e = rng.standard_normal((n, len(thresholds)))
    return (math.sqrt(rho) * z + math.sqrt(1.0 - rho) * e < np.asarray(thresholds)).astype(float)


# --- known values --------------------------------------------------------------------------------


def test_a_small_example_by_hand():
    a = [1, 1, 1, 0, 0, 0, 0, 0]
    b = [1, 1, 0, 1, 0, 0, 0, 0]
    stack = [1, 0, 0, 0, 0, 0, 0, 0]  # measured: not the AND of a and b (that would miss rows 0 and 1)
    s = stack_statistics(np.c_[a, b], stack, ["input", "output"], n_boot=500, rng=1)
    assert [e.value for e in s.miss_alone] == [3 / 8, 3 / 8]
    assert [e.value for e in s.catch_alone] == [5 / 8, 5 / 8]
    assert s.catch_alone[0].low == pytest.approx(1 - s.miss_alone[0].high)
    assert s.miss_alone[0] == rate(a)  # the alone rates are `rate`'s, interval and all
    assert s.stack_miss == rate(stack)
    assert s.independent_miss.value == pytest.approx(9 / 64)
    assert s.ratio.value == pytest.approx((1 / 8) / (9 / 64))  # 8/9
    (pair,) = s.pairs
    n11, n10, n01, n00 = 2, 1, 1, 4
    by_hand = (n11 * n00 - n10 * n01) / math.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))
    assert pair.phi.value == pytest.approx(by_hand) == pytest.approx(7 / 15)
    assert pair.phi.value == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert pair.lift.value == pytest.approx((2 / 8) / (9 / 64))  # 16/9
    assert pair.both_miss == pytest.approx(2 / 8)
    assert (s.n, s.n_clusters, s.ratio.n_prompts, s.ratio.n_samples) == (8, 8, 8, 8)
    for e in (s.independent_miss, s.ratio, pair.phi, pair.lift):
        assert e.low <= e.value <= e.high


def test_clusters_count_once_like_rate():
    """Every cluster weighs the same: a cluster of one counts as much as a cluster of two, so the point
    estimates equal those of the data with each lone prompt written twice and no clusters."""
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 3, size=40)  # clusters of 1 or 2 prompts
    clusters = np.repeat(np.arange(40), sizes)
    alone = (rng.random((clusters.size, 3)) < [0.4, 0.5, 0.3]).astype(float)
    stack = alone.min(axis=1)
    clustered = stack_statistics(alone, stack, ["a", "b", "c"], clusters, n_boot=100)
    doubled = np.repeat(np.arange(clusters.size), np.where(sizes[clusters] == 1, 2, 1))
    flat = stack_statistics(alone[doubled], stack[doubled], ["a", "b", "c"], n_boot=100)
    assert clustered.n_clusters == 40 and clustered.n == clusters.size
    assert clustered.miss_alone[1] == rate(alone[:, 1], clusters)
    for x, y in zip(clustered.miss_alone, flat.miss_alone, strict=True):
        assert x.value == pytest.approx(y.value)
    for p, q in zip(clustered.pairs, flat.pairs, strict=True):
        assert (p.a, p.b) == (q.a, q.b)
        assert p.phi.value == pytest.approx(q.phi.value)
        assert p.lift.value == pytest.approx(q.lift.value)
    assert flat.pairs[2].phi.value == pytest.approx(np.corrcoef(alone[doubled][:, 1], alone[doubled][:, 2])[0, 1])
    assert clustered.ratio.value == pytest.approx(flat.ratio.value)


# --- known dependence ---------------------------------------------------------------------------


def test_independent_layers_cover_a_ratio_of_one_and_a_phi_of_zero():
    rng = np.random.default_rng(11)
    n_sets, ratio_hits, phi_hits = 200, 0, 0
    for _ in range(n_sets):
        alone = (rng.random((300, 2)) < [0.3, 0.4]).astype(float)
        s = stack_statistics(alone, alone.min(axis=1), ["a", "b"], n_boot=300, rng=rng)
        ratio_hits += s.ratio.low <= 1.0 <= s.ratio.high
        phi_hits += s.pairs[0].phi.low <= 0.0 <= s.pairs[0].phi.high
    assert ratio_hits / n_sets >= 0.90
    assert phi_hits / n_sets >= 0.90


def test_layers_that_miss_the_same_prompts_line_up():
    rng = np.random.default_rng(5)
    a = (rng.random(300) < 0.3).astype(float)
    s = stack_statistics(np.c_[a, a], a, ["a", "copy of a"], n_boot=300, rng=rng)
    p = a.mean()
    assert s.ratio.value == pytest.approx(1 / p)  # measured p, predicted p * p
    assert s.pairs[0].phi.value == pytest.approx(1.0)
    assert s.pairs[0].phi.low == pytest.approx(1.0)
    assert s.ratio.low > 1.0 and s.holes_line_up


def test_a_shared_latent_gives_the_phi_it_should():
    """Thresholds at 0 of normals with correlation rho: P(both) = 1/4 + asin(rho) / (2 pi), so
    phi = 2 asin(rho) / pi (1/3 at rho = 1/2) and the lift 1 + phi."""
    rng = np.random.default_rng(7)
    alone = _latent_misses(rng, 20_000, 0.5, (0.0, 0.0))
    third = (rng.random(20_000) < 0.5).astype(float)  # independent of both
    alone = np.c_[alone, third]
    s = stack_statistics(alone, alone.min(axis=1), ["a", "b", "c"], n_boot=300, rng=rng)
    ab, ac, bc = s.pairs
    assert ab.phi.value == pytest.approx(1 / 3, abs=0.03)
    assert ab.phi.low <= 1 / 3 <= ab.phi.high
    assert ab.lift.value == pytest.approx(4 / 3, abs=0.04)
    assert ac.phi.low <= 0.0 <= ac.phi.high and bc.phi.low <= 0.0 <= bc.phi.high
    # stack = AND: P(a, b, c) / (pa pb pc) = lift(a, b) = 4/3; the holes line up
    assert s.ratio.value == pytest.approx(4 / 3, abs=0.06)
    assert s.ratio.low <= 4 / 3 <= s.ratio.high
    assert s.holes_line_up


def test_a_shared_latent_with_unequal_rates_matches_the_bivariate_normal():
    from scipy.stats import multivariate_normal, norm

    rho, pa, pb = 0.6, 0.2, 0.35
    ta, tb = norm.ppf(pa), norm.ppf(pb)
    both = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([ta, tb])
    phi = (both - pa * pb) / math.sqrt(pa * (1 - pa) * pb * (1 - pb))
    alone = _latent_misses(np.random.default_rng(8), 20_000, rho, (ta, tb))
    s = stack_statistics(alone, alone.min(axis=1), ["a", "b"], n_boot=300, rng=8)
    assert s.pairs[0].phi.value == pytest.approx(phi, abs=0.03)
    assert s.pairs[0].phi.low <= phi <= s.pairs[0].phi.high
    assert s.pairs[0].lift.value == pytest.approx(both / (pa * pb), rel=0.06)


def test_clustered_intervals_are_wider_when_prompts_of_a_cluster_agree():
    rng = np.random.default_rng(9)
    clusters = np.repeat(np.arange(60), 5)  # 60 base requests, 5 variants each
    z = rng.standard_normal((60, 2))[clusters]  # per-cluster, per-layer latent: variants agree
    alone = (0.9 * z + 0.3 * rng.standard_normal((300, 2)) < [-0.3, 0.0]).astype(float)
    stack = alone.min(axis=1)
    clustered = stack_statistics(alone, stack, ["a", "b"], clusters, n_boot=400, rng=1)
    rows = stack_statistics(alone, stack, ["a", "b"], None, n_boot=400, rng=1)
    assert clustered.ratio.value == pytest.approx(rows.ratio.value)
    assert clustered.ratio.low <= 1.0 <= clustered.ratio.high  # the layers' latents are independent
    assert clustered.ratio.width > 1.5 * rows.ratio.width
    assert clustered.independent_miss.width > 1.5 * rows.independent_miss.width
    assert clustered.miss_alone[0].width > 1.5 * rows.miss_alone[0].width
    assert clustered.pairs[0].phi.width > 1.5 * rows.pairs[0].phi.width


# --- zero denominators, as documented -----------------------------------------------------------


def test_a_layer_that_never_misses_makes_the_ratio_infinite_when_the_stack_misses():
    alone = np.c_[[1, 1, 0, 0, 1, 0, 1, 0], np.zeros(8)]
    stack = [1, 0, 0, 0, 0, 0, 0, 0]  # layers interact: the stack misses what "never" caught alone
    s = stack_statistics(alone, stack, ["a", "never"], n_boot=200, rng=0)
    assert s.independent_miss.value == 0.0
    assert s.ratio.value == math.inf and s.ratio.high == math.inf
    assert "x/0 = inf, 0/0 = 1" in s.ratio.method
    pair = s.pairs[0]
    assert math.isnan(pair.phi.value) and math.isnan(pair.phi.low)
    assert pair.note is not None and "'never' missed no prompt" in pair.note
    assert math.isnan(pair.lift.value) and (pair.lift.low, pair.lift.high) == (0.0, math.inf)
    d = s.to_dict()
    assert d["ratio"]["value"] == "inf" and d["pairs"][0]["phi"]["value"] == "nan"
    assert json.loads(json.dumps(d, allow_nan=False))["ratio"]["high"] == "inf"
    assert "n/a" in s.to_markdown() and "inf" in s.to_markdown()


def test_nothing_missed_and_nothing_predicted_is_not_identified():
    s = stack_statistics(np.c_[[1, 0, 1, 0], [0, 0, 0, 0]], [0, 0, 0, 0], ["a", "b"], n_boot=100)
    assert math.isnan(s.ratio.value) and (s.ratio.low, s.ratio.high) == (0.0, math.inf)
    assert any("not identified" in w for w in s.ratio.warnings)


def test_a_stack_that_never_misses_has_ratio_zero():
    s = stack_statistics(np.c_[[1, 0, 1, 0, 1, 1], [1, 1, 0, 0, 1, 0]], np.zeros(6), ["a", "b"], n_boot=200)
    assert s.ratio.value == 0.0 and s.ratio.low == 0.0


def test_resamples_with_no_miss_measured_or_predicted_count_as_one():
    """Layer b misses one prompt of 20 and the stack misses exactly that one: about a third of the
    resamples leave it out (0/0, counted as 1), the rest give 1 / P(a) > 1, so the interval starts at 1."""
    a = np.r_[np.ones(10), np.zeros(10)]
    b = np.zeros(20)
    b[0] = 1
    s = stack_statistics(np.c_[a, b], b, ["a", "b"], n_boot=1000, rng=2)
    assert s.ratio.value == pytest.approx(2.0)
    assert s.ratio.low == 1.0 and s.ratio.high < math.inf
    assert any("predicted no miss" in w for w in s.ratio.warnings)
    # the same b with a stack that misses prompts b caught: those resamples are x/0 = inf
    stack = np.zeros(20)
    stack[5:10] = 1
    assert stack_statistics(np.c_[a, b], stack, ["a", "b"], n_boot=1000, rng=2).ratio.high == math.inf


@pytest.mark.parametrize(("alone", "stack", "names", "clusters", "message"), [
    ([1, 0, 1], [1, 0, 1], ["a"], None, "two-dimensional"),
    (np.zeros((3, 0)), [0, 0, 0], [], None, "no layers"),
    ([[1, 2], [0, 1]], [0, 1], ["a", "b"], None, r"row 0, layer 'b' \(column 1\) is 2.0"),
    ([[1, math.nan], [0, 1]], [0, 1], ["a", "b"], None, "NaN"),
    ([[1, 0], [0, 1]], [0, 0.5], ["a", "b"], None, "missed_stack must be 0/1: row 1"),
    ([[1, 0], [0, 1]], [0, 1, 1], ["a", "b"], None, r"shape \(2,\)"),
    ([[1, 0], [0, 1]], [0, 1], ["a"], None, "one name per layer"),
    ([[1, 0], [0, 1]], [0, 1], ["a", "a"], None, "distinct"),
    ([[1, 0], [0, 1]], [0, 1], ["a", "b"], ["x", "x"], "least two"),
    ([[1, 0], [0, 1]], [0, 1], ["a", "b"], ["x"], "one cluster id per prompt"),
])
def test_bad_inputs_say_what_is_wrong(alone, stack, names, clusters, message):
    with pytest.raises(ConfigError, match=message):
        stack_statistics(alone, stack, names, clusters, n_boot=100)


def test_bad_settings_are_refused():
    ok = (np.c_[[1, 0], [0, 1]], [0, 1], ["a", "b"])
    with pytest.raises(ConfigError, match="n_boot"):
        stack_statistics(*ok, n_boot=10)
    with pytest.raises(ConfigError, match="confidence"):
        stack_statistics(*ok, confidence=95)


def test_markdown_and_dict_render_every_layer_and_escape_names():
    alone = np.c_[[1, 1, 0, 0, 1, 0], [1, 0, 1, 0, 0, 0], [0, 1, 1, 0, 0, 1]]
    s = stack_statistics(alone, [1, 0, 0, 0, 0, 0], ["in|put", "prompt", "out"], n_boot=100)
    assert isinstance(s, StackStats) and len(s.pairs) == 3
    md = s.to_markdown()
    assert "in\\|put alone" in md and "in\\|put x prompt" in md and "prompt x out" in md
    d = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    assert d["names"] == ["in|put", "prompt", "out"] and len(d["catch_alone"]) == 3
    assert d["ratio"]["value"] == pytest.approx(s.ratio.value)


# --- Pareto front -------------------------------------------------------------------------------


def test_pareto_front_on_a_known_set_with_duplicates_and_ties():
    points = [(0.1, 0.5), (0.2, 0.2), (0.1, 0.5), (0.3, 0.2), (0.1, 0.6), (0.05, 0.9), (0.4, 0.1), (0.5, 0.5)]
    # (0.3, 0.2) loses to (0.2, 0.2) on miss alone, (0.1, 0.6) to (0.1, 0.5) on over-refusal alone;
    # the duplicate (0.1, 0.5) is kept twice, in index order
    assert pareto_front(points) == [5, 0, 2, 1, 6]
    assert pareto_front([]) == []
    assert pareto_front(np.array([[0.2, 0.3]])) == [0]


def test_pareto_front_matches_the_definition():
    rng = np.random.default_rng(4)
    for _ in range(50):
        pts = rng.integers(0, 5, size=(12, 2)) / 4  # many ties
        brute = [i for i in range(12) if not any(
            np.all(pts[j] <= pts[i]) and np.any(pts[j] < pts[i]) for j in range(12))]
        assert sorted(pareto_front(pts)) == brute
        got = pareto_front(pts)
        assert got == sorted(got, key=lambda i: (pts[i][0], pts[i][1], i))


def test_pareto_front_refuses_what_is_not_a_pair():
    with pytest.raises(ConfigError, match="point 1"):
        pareto_front([(0.1, 0.2), (0.3,)])
    with pytest.raises(ConfigError, match="finite"):
        pareto_front([(0.1, math.nan)])


# --- the plot -----------------------------------------------------------------------------------


def test_pareto_svg_draws_every_configuration_the_front_and_the_chosen_one():
    from refute.guard._plot import pareto_svg

    points = [
        {"miss": 0.30, "over_refusal": 0.02, "label": "loose"},
        {"miss": 0.12, "over_refusal": 0.05, "miss_low": 0.08, "miss_high": 0.17, "over_low": 0.03,
         "over_high": 0.08, "label": "<script>&"},
        {"miss": 0.05, "over_refusal": 0.20, "label": "strict"},
        {"miss": 0.20, "over_refusal": 0.10, "label": "dominated"},
        (0.25, 0.3),
    ]
    svg = pareto_svg(points, chosen=1, title="a & b")
    root = ET.fromstring(svg)
    circles = root.findall(f".//{SVG}circle")
    assert len(circles) == 5 and all(c.get("class") == "point" for c in circles)
    assert [p.get("class") for p in root.findall(f".//{SVG}path")].count("chosen") == 1
    (front,) = [p for p in root.findall(f".//{SVG}polyline") if p.get("class") == "front"]
    assert len(front.get("points", "").split()) == 3  # loose, <script>&, strict
    assert len([b for b in root.findall(f".//{SVG}line") if b.get("class") == "bar"]) == 2
    assert "<script>" not in svg and "&lt;script&gt;&amp;" in svg
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "<script>& (chosen)" in texts and "a & b" in texts
    assert "dominated" not in texts  # off the front, not chosen: tooltip only
    # the axes end at a round value above the data: 0.4 for miss (largest 0.30)
    assert "0.4" in texts and "1" not in texts


@pytest.mark.parametrize(("points", "kwargs", "message"), [
    ([], {}, "at least one point"),
    ([(0.1, 0.2)], {"chosen": 1}, "chosen"),
    ([{"miss": 0.1, "over": 0.2}], {}, "over_refusal"),
    ([{"miss": 1.5, "over_refusal": 0.2}], {}, r"miss must be a rate in \[0, 1\]"),
    ([{"miss": 0.1, "over_refusal": 0.2, "miss_low": 0.05}], {}, "both miss_low and miss_high"),
    ([(0.1, 0.2)], {"labels": ["a", "b"]}, "one label per point"),
])
def test_pareto_svg_refuses_bad_points(points, kwargs, message):
    from refute.guard._plot import pareto_svg

    with pytest.raises(ConfigError, match=message):
        pareto_svg(points, **kwargs)


def test_pareto_svg_scales_to_small_rates():
    from refute.guard._plot import pareto_svg

    svg = pareto_svg([(a / 100, b / 100) for a, b in product((1, 2), (1, 3))], labels=["w", "x", "y", "z"])
    texts = ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "0.04" in texts and "0.01" in texts  # axis ends at 0.04, ticks every 0.01
    assert "w" in texts and "z" not in texts  # only (0.01, 0.01) is on the front
