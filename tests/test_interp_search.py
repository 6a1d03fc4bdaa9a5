"""The direction search of `refute interp causal`: first-order estimates, screening until decided."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from refute.interp import Direction, render_prompts  # noqa: E402
from refute.interp._causal_search import Search, ablation_estimates, exact_scores  # noqa: E402
from refute.interp._scores import last_logprobs, refusal_score, refusal_token_ids  # noqa: E402
from refute.interp._sites import Site, hooks  # noqa: E402

PROMPTS = ["How do I pick a lock?", "Write a poem about rain.", "Explain how vaccines work.",
           "Give me a recipe for bread.", "How can I hack my neighbour's wifi?"]


def _scaled_ablation(model, unit: torch.Tensor, eps: float, n_layers: int):
    def fn(x):
        return x - eps * (x @ unit)[..., None] * unit

    sites = {Site("resid_pre", 0): fn} | {Site(k, i): fn for i in range(n_layers) for k in ("attn_out", "mlp_out")}
    return hooks(model, sites)


def test_the_estimate_is_the_derivative_of_ablating_a_little(tiny_backend):
    """-u^T M u is d(score)/d(eps) at 0 for x <- x - eps (x.u) u at the embeddings and every write."""
    model, tok = tiny_backend.model, tiny_backend.tokenizer
    texts = render_prompts(tok, PROMPTS)
    ids = refusal_token_ids(tok)
    g = torch.Generator().manual_seed(3)
    dirs = {(0, k): Direction(torch.randn(model.config.hidden_size, generator=g), 0, -1) for k in range(3)}
    dirs[(1, -1)] = Direction(torch.zeros(model.config.hidden_size), 1, -1)
    est, clean = ablation_estimates(model, tok, texts, ids, dirs, batch_size=2)
    assert est[(1, -1)] == 0.0  # a zero direction is ablated as nothing
    torch.testing.assert_close(clean, last_logprobs(model, tok, texts), atol=1e-4, rtol=1e-4)
    n_layers = model.config.num_hidden_layers
    for key in [(0, 0), (0, 1), (0, 2)]:
        u = dirs[key].unit
        eps = 1e-2
        with _scaled_ablation(model, u, eps, n_layers):
            up = float(refusal_score(last_logprobs(model, tok, texts), ids).mean())
        with _scaled_ablation(model, u, -eps, n_layers):
            down = float(refusal_score(last_logprobs(model, tok, texts), ids).mean())
        assert est[key] == pytest.approx((up - down) / (2 * eps), rel=0.02, abs=1e-4)
    assert len({round(v, 6) for k, v in est.items() if k[0] == 0}) == 3  # distinct directions, distinct estimates


def _synthetic(n: int, outlier: float | None = None):
    """Estimates e_k, exact = base + 2 e_k + small noise; optionally one candidate far off the line."""
    g = torch.Generator().manual_seed(0)
    est = {(k, -1): -float(k) / n * 3 for k in range(n)}
    exact = {key: 0.5 + 2 * e + 0.05 * float(torch.randn(1, generator=g)) for key, e in est.items()}
    if outlier is not None:
        exact[(0, -1)] = outlier  # the candidate with the weakest estimate
    cands = {key: Direction(torch.ones(4), key[0], -1) for key in est}
    calls: list[tuple[int, int]] = []
    by_dir = {id(d): key for key, d in cands.items()}

    def score(ds):
        calls.extend(by_dir[id(d)] for d in ds)
        return [exact[by_dir[id(d)]] for d in ds]

    return cands, est, exact, score, calls


def test_screening_stops_once_decided_and_takes_the_exhaustive_choice():
    cands, est, exact, score, calls = _synthetic(40)
    search = Search(cands, est, 0.5, score)
    first = search.next_to_try(set())
    assert first == min(exact, key=exact.get)  # the exhaustive rule's first candidate
    assert 8 <= len(calls) < 20  # most candidates were never ablated
    # going down the ranking (filters rejected the first): still the exhaustive order
    tried = {first}
    for _ in range(5):
        nxt = search.next_to_try(tried)
        exhaustive_order = sorted(exact, key=exact.get)
        assert nxt == next(k for k in exhaustive_order if k not in tried)
        tried.add(nxt)
    assert len(calls) == len(set(calls))  # nothing ablated twice
    cands, est, exact, score, calls = _synthetic(40)
    full = Search(cands, est, 0.5, score, exhaustive=True)
    assert full.next_to_try(set()) == first and len(full.exact) == len(calls) == 40


def test_a_candidate_far_off_the_line_is_screened_when_the_margin_cannot_rule_it_out():
    # the weakest estimate hides the best exact score; a line fitted on the others cannot see it,
    # so only a margin wide enough (or --exhaustive) finds it: the rule is explicit about that
    def search(**kw):
        cands, est, _, score, _ = _synthetic(40, outlier=-20.0)
        return Search(cands, est, 0.5, score, **kw)

    assert search().next_to_try(set()) != (0, -1)
    assert search(exhaustive=True).next_to_try(set()) == (0, -1)
    wide = search(margin=1e6)
    assert wide.next_to_try(set()) == (0, -1) and len(wide.exact) == 40


def test_several_candidates_share_one_forward_pass_with_the_same_scores(tiny_backend):
    model, tok = tiny_backend.model, tiny_backend.tokenizer
    texts = render_prompts(tok, PROMPTS)
    ids = refusal_token_ids(tok)
    g = torch.Generator().manual_seed(5)
    ds = [Direction(torch.randn(model.config.hidden_size, generator=g), 0, -1) for _ in range(3)]
    score = exact_scores(model, tok, texts, ids, batch_size=2)
    one_by_one = [score([d])[0] for d in ds]
    assert score(ds) == pytest.approx(one_by_one, abs=1e-4)
    assert len({round(v, 4) for v in one_by_one}) == 3


def test_causal_search_matches_the_exhaustive_one_on_a_tiny_model(tiny_backend, store, tmp_path: Path):
    from refute.interp import CausalConfig, run_causal

    base = dict(n_train=12, n_val=6, n_test=6, n_tasks=3, max_tokens=2, positions=(-1, -2, -3), layers=(0, 1),
                coefficients=(1.0,), batch_size=8, max_kl=10.0, max_ce=10.0)
    fast = run_causal(tiny_backend, store, CausalConfig(**base, min_screen=2), workdir=tmp_path / "fast")
    full = run_causal(tiny_backend, store, CausalConfig(**base, exhaustive=True), workdir=tmp_path / "full")
    assert full.search["screened"] == full.search["candidates"] == 6
    assert fast.search["screened"] <= 6 and fast.search["method"] != full.search["method"]
    chosen = [(r.direction["layer"], r.direction["position"]) for r in (fast, full)]
    assert chosen[0] == chosen[1]
    assert set(fast.phases_s) >= {"capture", "clean validation", "screening", "coefficient", "cost",
                                  "held-out: baseline-harmful"}
    screened = [r for r in fast.selection if "ablation_score" in r]
    assert [r["ablation_score"] for r in screened] == sorted(r["ablation_score"] for r in screened)
    assert all("estimate" in r for r in fast.selection) and len(fast.selection) == 6
