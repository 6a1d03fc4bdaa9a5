"""refute.interp on tiny random models: invariants that fail when the mechanics are wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from refute.interp import (  # noqa: E402 - after importorskip
    ActivationStore,
    Direction,
    InterpError,
    Site,
    ablate,
    ablated,
    add_direction,
    capture,
    diff_in_means,
    find_layers,
    hooks,
    orthogonalize_weights,
    parse_site,
    patch_sweep,
    random_like,
    render_prompts,
    save_orthogonalized,
    steered,
)
from refute.interp._capture import encode_batch  # noqa: E402

PROMPTS = ["How do I bake bread?", "What is the capital of France?", "Tell me a joke about dogs.",
           "The quick brown fox", "Explain 2 + 2."]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from _tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), arch="gpt2")


def _load(directory: Path):
    from refute.models._hf import HFBackend

    return HFBackend(directory, spec=f"hf:{directory}", dtype="float32", batch_size=4)


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def backend(request, tiny_model_dir: Path, gpt2_dir: Path):
    return _load(tiny_model_dir if request.param == "qwen2" else gpt2_dir)


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_import_does_not_load_torch():
    code = "import sys, refute.interp; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parse_site_and_errors(backend):
    assert parse_site("resid_post.1") == Site("resid_post", 1)
    with pytest.raises(InterpError, match="unknown activation site"):
        parse_site("resid.1")
    with pytest.raises(InterpError, match="does not exist"):
        capture(backend.model, backend.tokenizer, PROMPTS, ["resid_pre.7"])
    assert len(find_layers(backend.model)) == 2


def test_capture_matches_hidden_states_and_padding(backend):
    """resid_pre.L is hidden_states[L]; positions are the same whatever the padding."""
    texts = render_prompts(backend.tokenizer, PROMPTS)
    reference = []
    for text in texts:  # one at a time: no padding at all
        with torch.no_grad():
            hs = backend.model(**encode_batch(backend.tokenizer, [text]), output_hidden_states=True).hidden_states
        reference.append((hs[1][0, -1], hs[1][0, 0]))
    n_hooks = _hook_count(backend.model)
    acts = capture(backend.model, backend.tokenizer, texts, ["resid_pre.1", "resid_post.0"], positions=(-1, 0),
                   batch_size=5)
    assert _hook_count(backend.model) == n_hooks
    assert acts["resid_pre.1"].shape == (5, 2, 32)
    torch.testing.assert_close(acts["resid_pre.1"], acts["resid_post.0"])
    for i, (last, first) in enumerate(reference):
        torch.testing.assert_close(acts["resid_pre.1"][i, 0], last, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(acts["resid_pre.1"][i, 1], first, atol=1e-4, rtol=1e-4)


def test_disk_store_round_trip(backend, tmp_path: Path):
    texts = render_prompts(backend.tokenizer, PROMPTS)
    mem = capture(backend.model, backend.tokenizer, texts, ["mlp_out.0", "attn_out.1"], batch_size=2)
    disk = capture(backend.model, backend.tokenizer, texts, ["mlp_out.0", "attn_out.1"], batch_size=2,
                   store=tmp_path / "acts")
    assert isinstance(disk, ActivationStore)
    reopened = ActivationStore(tmp_path / "acts")
    assert reopened.shape("mlp_out.0") == (5, 1, 32)
    assert len(list(reopened.iter_batches("mlp_out.0"))) == 3  # 2 + 2 + 1 rows
    torch.testing.assert_close(reopened.load("attn_out.1"), mem["attn_out.1"])


def test_ablation_leaves_no_component_at_every_site(backend):
    model, tok = backend.model, backend.tokenizer
    texts = render_prompts(tok, PROMPTS)
    g = torch.Generator().manual_seed(0)
    d = Direction(torch.randn(32, generator=g), layer=1, position=-1)
    sites = [f"{k}.{i}" for i in range(2) for k in ("resid_pre", "resid_post", "attn_out", "mlp_out")]
    before = capture(model, tok, texts, sites, positions=(-1, 0, 1))
    n_hooks = _hook_count(model)
    with ablate(model, d):
        assert _hook_count(model) == n_hooks + 6
        after = capture(model, tok, texts, sites, positions=(-1, 0, 1))
    assert _hook_count(model) == n_hooks
    for site in sites:
        had = (before[site] @ d.unit).abs().max()
        assert had > 0  # there was a component to remove
        assert (after[site] @ d.unit).abs().max() < 1e-4 * had, site


def test_addition_shifts_only_its_layer(backend):
    model, tok = backend.model, backend.tokenizer
    texts = render_prompts(tok, PROMPTS)
    d = Direction(torch.ones(32), layer=1, position=-1)
    before = capture(model, tok, texts, ["resid_pre.0", "resid_pre.1"])
    with add_direction(model, d, layer=1, coefficient=2.0):
        after = capture(model, tok, texts, ["resid_pre.0", "resid_pre.1"])
    torch.testing.assert_close(after["resid_pre.0"], before["resid_pre.0"])
    torch.testing.assert_close(after["resid_pre.1"] - before["resid_pre.1"], 2.0 * torch.ones(5, 1, 32))


def test_hooks_removed_after_an_exception(backend):
    def boom(x):
        raise RuntimeError("boom")

    enc = encode_batch(backend.tokenizer, PROMPTS)
    n_hooks = _hook_count(backend.model)
    with pytest.raises(RuntimeError, match="boom"), hooks(backend.model, {"resid_pre.0": boom}):
        backend.model(**enc)
    assert _hook_count(backend.model) == n_hooks


def test_random_direction_is_norm_matched_and_seeded():
    d = Direction(torch.arange(32, dtype=torch.float32), layer=3, position=-2)
    a, b, c = random_like(d, 1), random_like(d, 1), random_like(d, 2)
    assert a.norm == pytest.approx(d.norm, rel=1e-5)
    torch.testing.assert_close(a.vector, b.vector)
    assert not torch.allclose(a.vector, c.vector)
    assert abs(float(a.unit @ d.unit)) < 0.6


def test_diff_in_means():
    a, b = torch.ones(4, 2, 3), torch.zeros(6, 2, 3)
    torch.testing.assert_close(diff_in_means(a, b), torch.ones(2, 3))
    with pytest.raises(InterpError):
        diff_in_means(a, torch.zeros(4, 3, 3))


def test_orthogonalized_weights_match_the_ablation_hook(backend, tmp_path: Path):
    model, tok = backend.model, backend.tokenizer
    enc = encode_batch(tok, render_prompts(tok, PROMPTS))
    d = Direction(torch.randn(32, generator=torch.Generator().manual_seed(3)), layer=0, position=-1)
    with torch.no_grad(), ablate(model, d):
        hooked = model(**enc).logits
    with torch.no_grad():
        plain = model(**enc).logits
    out = save_orthogonalized(model, tok, d, tmp_path / "ortho")
    with torch.no_grad():  # the original is untouched
        torch.testing.assert_close(model(**enc).logits, plain)
    edited = _load(out).model
    with torch.no_grad():
        ortho = edited(**enc).logits
    assert (hooked - plain).abs().max() > 1e-3
    torch.testing.assert_close(ortho, hooked, atol=1e-4, rtol=1e-4)
    assert (out / "refute_intervention.json").exists()


def _replies_through_engine(models, store) -> dict[str, list[str | None]]:
    """Run four benign tasks on each model (or variant) through the engine; replies by model spec."""
    from refute.engine import TaskConfig, run_task
    from refute.models import GenerateConfig

    task = TaskConfig(dataset="benign-tasks", limit=4, generate=GenerateConfig(max_tokens=6))
    replies = {}
    for m in models:
        run = run_task(task, m, store, progress=False)
        assert store.get_run(run.id).model_spec == m.info.spec
        replies[m.info.spec] = [s.completion for s in store.samples(run.id)]
    return replies


def test_variants_have_their_own_spec_and_generate_with_hooks(backend, store):
    d = Direction(torch.randn(32, generator=torch.Generator().manual_seed(5)) * 50, layer=1, position=-1)
    abl, add = ablated(backend, d), steered(backend, d, 1, 4.0)
    n_hooks = _hook_count(backend.model)
    assert abl.info.spec.startswith(backend.info.spec + "+ablate(") and add.info.spec != abl.info.spec
    texts = _replies_through_engine([backend, add], store)
    assert texts[backend.info.spec] != texts[add.info.spec]  # the hook was active while generating
    assert _hook_count(backend.model) == n_hooks


def test_patching_with_own_clean_activation_changes_nothing(backend):
    tok = backend.tokenizer
    clean = render_prompts(tok, ["What is 2 + 2?"])[0]
    a = tok(clean).input_ids
    for digit in "3456789":  # a corrupted prompt that differs from the clean one in one token
        corrupt = render_prompts(tok, [f"What is {digit} + 2?"])[0]
        b = tok(corrupt).input_ids
        if len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1:
            break
    else:
        pytest.skip("the tiny tokenizer merged every digit differently")
    ids = tok("4", add_special_tokens=False).input_ids[0], tok("5", add_special_tokens=False).input_ids[0]
    n_hooks = _hook_count(backend.model)
    own = patch_sweep(backend.model, tok, clean, clean, ids, positions=(-1, -2, -3))
    assert own.values.shape == (2, 3)
    torch.testing.assert_close(own.values, torch.full_like(own.values, own.clean), atol=1e-4, rtol=0)
    # Layer 0's input is the token embedding: patching the one token that differs makes the
    # corrupted run the clean run; patching a token both share changes nothing.
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    sweep = patch_sweep(backend.model, tok, clean, corrupt, ids, layers=[0], positions=(diff[0], -1))
    assert sweep.values[0, 0] == pytest.approx(sweep.clean, abs=1e-4)
    assert sweep.values[0, 1] == pytest.approx(sweep.corrupt, abs=1e-4)
    noising = patch_sweep(backend.model, tok, clean, corrupt, ids, layers=[0], positions=(diff[0],),
                          direction="corrupt_to_clean")
    assert noising.values[0, 0] == pytest.approx(sweep.corrupt, abs=1e-4)
    assert "layer" in sweep.to_markdown()
    assert _hook_count(backend.model) == n_hooks


def test_causal_pipeline_on_a_tiny_model(tiny_backend, store, tmp_path: Path):
    from refute.interp import CausalConfig, run_causal

    cfg = CausalConfig(n_train=12, n_val=6, n_test=8, n_tasks=4, max_tokens=3, positions=(-1, -2),
                       coefficients=(1.0, 2.0), screen_top=2, batch_size=8)
    result = run_causal(tiny_backend, store, cfg, workdir=tmp_path / "causal")
    assert set(result.conditions) >= {"baseline-harmful", "ablation-harmful", "random-ablation-harmful",
                                      "addition-harmless", "random-addition-harmless"}
    assert result.splits["harmful test"] == 8
    runs = {c.run_id for c in result.conditions.values()}
    assert len(runs) == len(result.conditions)
    assert all(store.get_run(r).kind == "interp" for r in runs)
    for comp in result.comparisons.values():
        assert comp["low"] <= comp["difference"] <= comp["high"]
    assert "ablation - baseline (harmful)" in result.to_markdown()
    assert (tmp_path / "causal" / "result.json").exists()
    loaded = Direction.load(result.direction["file"])
    assert loaded.digest == result.direction["digest"]
    # selection: ranked by validation ablation score, filters tried from the top, stop at the first pass
    scores = [r["ablation_score"] for r in result.selection]
    assert scores == sorted(scores)
    tried = [r for r in result.selection if "kl" in r]
    assert tried == result.selection[: len(tried)] and 0 < len(tried) <= cfg.screen_top
    assert all(r["passes"] for r in tried[-1:]) or not any(r["passes"] for r in tried)
    assert all(r["kl"] <= cfg.max_kl for r in tried if "ce_change" in r)  # CE only after the cheap filters
    assert all(r["kl"] <= cfg.max_kl and r["ce_change"] <= cfg.max_ce for r in tried if r["passes"])
    chosen = next((r for r in tried if r["passes"]), None) or min(tried, key=lambda r: r["kl"])
    assert (chosen["layer"], chosen["position"]) == (result.direction["layer"], result.direction["position"])


def test_probes_separate_planted_classes_and_not_noise():
    from refute.interp import auroc, fit_probe, layer_sweep, split_indices

    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    signal = torch.randn(200, 16, generator=g)
    signal[:, 3] += 3.0 * y  # class 1 sits 3 standard deviations along one axis
    noise = torch.randn(200, 16, generator=g)
    sweep = layer_sweep({"resid_pre.1": signal, "resid_pre.0": noise[:, None, :]}, y.tolist(), seed=0, n_boot=200)
    by_site = {r.site: r.metrics["test"] for r in sweep.rows}
    assert by_site["resid_pre.1"].auroc.value > 0.85  # the oracle (axis 3 alone) gets 0.97 here
    assert by_site["resid_pre.0"].auroc.low < 0.5 < by_site["resid_pre.0"].auroc.high
    assert by_site["resid_pre.1"].auroc.low > by_site["resid_pre.0"].auroc.high
    assert "resid_pre.1" in sweep.to_markdown()
    idx = split_indices(200, seed=0)
    dm = fit_probe(signal[idx["train"]], y[idx["train"]], kind="diff_means")
    assert auroc(dm.score(signal[idx["test"]]).numpy(), y[idx["test"]].numpy()) > 0.85
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)  # sklearn's example
    with pytest.raises(InterpError):
        fit_probe(signal[:10], [1] * 10)


def test_topk_sae_trains_seeded_and_feature_edits_are_exact(tiny_backend, tmp_path: Path):
    from refute.interp import (
        SAEConfig,
        ce_loss_recovered,
        feature_hooks,
        sae_metrics,
        top_contexts,
        train_sae,
    )

    model, tok = tiny_backend.model, tiny_backend.tokenizer
    texts = render_prompts(tok, PROMPTS * 4)
    store = capture(model, tok, texts, ["resid_pre.1"], positions=tuple(range(-8, 0)), batch_size=4,
                    store=tmp_path / "acts")
    cfg = SAEConfig(n_features=64, k=4, lr=1e-2, epochs=30, batch_size=64, seed=1)
    sae = train_sae(store, cfg, site="resid_pre.1")
    again = train_sae(store, cfg, site="resid_pre.1")
    torch.testing.assert_close(sae.W_dec, again.W_dec)  # seeded: the same SAE twice
    x = store.load("resid_pre.1")
    m = sae_metrics(sae, x)
    untrained = sae_metrics(train_sae(x, SAEConfig(n_features=64, k=4, epochs=0, seed=1)), x)
    assert m.l0 <= 4 and 0 <= m.dead_fraction < 1
    assert m.fvu < untrained.fvu and m.fvu < 0.5
    ce = ce_loss_recovered(model, tok, sae, "resid_pre.1", texts[:4])
    assert ce["ce_zero"] != ce["ce_clean"]
    # Ablating every feature leaves exactly the SAE's error plus its decoder bias at the site.
    sample = texts[:3]
    before = capture(model, tok, sample, ["resid_pre.1"], positions=(-1, -2))["resid_pre.1"]
    with hooks(model, feature_hooks(sae, "resid_pre.1", range(64), value=0.0)):
        after = capture(model, tok, sample, ["resid_pre.1"], positions=(-1, -2))["resid_pre.1"]
    with torch.no_grad():
        flat = before.reshape(-1, before.shape[-1])
        expected = (flat - sae(flat)[0] + sae.b_dec).reshape(before.shape)
    torch.testing.assert_close(after, expected, atol=1e-4, rtol=1e-4)
    z = sae.encode(x.reshape(-1, x.shape[-1])).detach()
    best = int(z.sum(0).argmax())
    contexts = top_contexts(model, tok, sae, "resid_pre.1", texts[:5], best, n=3)
    assert contexts and contexts[0][0] >= contexts[-1][0]


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_layer_discovery_and_ablation_on_other_families(family):
    """Llama and Gemma 3 (sandwich norms: attn_out/mlp_out are the post-norm outputs)."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

    torch.manual_seed(0)
    common = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}
    config = LlamaConfig(**common) if family == "llama" else Gemma3TextConfig(**common, head_dim=8)
    model = AutoModelForCausalLM.from_config(config).eval()
    assert len(find_layers(model)) == 2
    ids = torch.randint(0, 64, (2, 7))
    d = Direction(torch.randn(32), layer=0, position=-1)
    seen: dict[str, torch.Tensor] = {}

    def keep(name):
        def fn(x):
            seen[name] = x.detach().clone()

        return fn

    sites = [f"{k}.{i}" for i in range(2) for k in ("resid_pre", "resid_post", "attn_out", "mlp_out")]
    with torch.no_grad(), ablate(model, d), hooks(model, {s: keep(s) for s in sites}):
        model(input_ids=ids)
    for site in sites:
        assert (seen[site] @ d.unit).abs().max() < 1e-4 * seen[site].abs().max(), site
    if family == "gemma3":
        with pytest.raises(InterpError, match=r"use refute\.interp\.ablate"):
            orthogonalize_weights(model, d)


def test_public_api_is_pinned():
    from refute import interp

    assert sorted(interp.__all__) == interp.__all__
    assert {"capture", "ActivationStore", "ablate", "add_direction", "save_orthogonalized", "random_like",
            "ablated", "steered", "run_causal", "patch_sweep", "layer_sweep", "train_sae"} <= set(interp.__all__)


def test_cli_causal_on_a_tiny_model(tiny_model_dir: Path, tmp_path: Path):
    import typer
    from typer.testing import CliRunner

    from refute.cli._interp import interp_app

    app = typer.Typer()
    app.add_typer(interp_app, name="interp")
    args = ["interp", "causal", "--model", f"hf:{tiny_model_dir}", "--n-train", "10", "--n-val", "6",
            "--n-test", "6", "--n-tasks", "3", "--max-tokens", "2", "--positions=-1", "--layers", "0-1",
            "--coefficients", "1", "--dtype", "float32", "--store", str(tmp_path / "r.db"),
            "--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "causal.html")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ablation - baseline (harmful)" in result.output
    assert (tmp_path / "r.json").exists()
    html = (tmp_path / "causal.html").read_text()
    assert html.count("<svg") == 2 and '<table class="checks">' in html
    assert "ablation - baseline (harmful)" in (tmp_path / "causal.md").read_text()
    bad = CliRunner().invoke(app, [*args[:4], "--n-test", "500", "--store", str(tmp_path / "r.db")])
    assert bad.exit_code == 2 and "cannot give" in bad.output


def test_default_splits_are_disjoint_deterministic_and_sized():
    from refute.interp import CausalConfig
    from refute.interp._causal import make_splits

    hs, bs = make_splits(CausalConfig())
    again, _ = make_splits(CausalConfig())
    for splits in (hs, bs):
        ids = [{r.id for r in splits[k]} for k in ("train", "val", "test")]
        assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert [len(hs[k]) for k in ("train", "val", "test")] == [88, 32, 100]  # 220 built-in harmful prompts
    assert [len(bs[k]) for k in ("train", "val", "test")] == [128, 32, 100]
    assert [r.id for r in hs["test"]] == [r.id for r in again["test"]]
    other, _ = make_splits(CausalConfig(seed=1))
    assert [r.id for r in other["test"]] != [r.id for r in hs["test"]]


def test_forward_measures_take_an_intervention_over_several_batches(tiny_backend):
    from refute.interp._scores import cross_entropy, last_logprobs

    model, tok = tiny_backend.model, tiny_backend.tokenizer
    texts = render_prompts(tok, PROMPTS)
    d = Direction(torch.randn(32, generator=torch.Generator().manual_seed(7)), layer=0, position=-1)
    one = cross_entropy(model, tok, texts, batch_size=5, intervention=ablate(model, d))
    many = cross_entropy(model, tok, texts, batch_size=2, intervention=ablate(model, d))
    assert one == pytest.approx(many, abs=2e-3)  # padding differs between batchings
    lp = last_logprobs(model, tok, texts, batch_size=2, intervention=ablate(model, d))
    torch.testing.assert_close(lp, last_logprobs(model, tok, texts, batch_size=5, intervention=ablate(model, d)),
                               atol=2e-3, rtol=1e-3)


def test_cross_entropy_ignores_left_padding(tiny_backend):
    """A text's CE is the same alone or padded next to a longer one: no target from a pad position."""
    from refute.interp._scores import cross_entropy

    model, tok = tiny_backend.model, tiny_backend.tokenizer
    short, long = "Explain 2 + 2.", "Tell me a long story about dogs, cats and the capital of France."
    alone = cross_entropy(model, tok, [short])[0]
    padded = cross_entropy(model, tok, [short, long])[0]
    assert padded == pytest.approx(alone, abs=1e-4)
    n_targets = len(tok(short, add_special_tokens=False).input_ids) - 1  # the first token is not predicted
    ids = torch.tensor([tok(short, add_special_tokens=False).input_ids])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, :-1].float()
    ref = torch.nn.functional.cross_entropy(logits, ids[0, 1:]).item()
    assert n_targets == ids.shape[1] - 1 and alone == pytest.approx(ref, abs=1e-4)


def test_sae_feature_edits_are_model_variants_the_engine_measures(tiny_backend, store, tmp_path: Path):
    from refute.interp import SAEConfig, feature_edited, train_sae

    model, tok = tiny_backend.model, tiny_backend.tokenizer
    texts = render_prompts(tok, PROMPTS * 4)
    acts = capture(model, tok, texts, ["resid_pre.1"], positions=tuple(range(-8, 0)), batch_size=4)
    sae = train_sae(acts["resid_pre.1"], SAEConfig(n_features=64, k=4, lr=1e-2, epochs=20, seed=1))
    clamp = feature_edited(tiny_backend, sae, "resid_pre.1", [3, 7], value=500.0)
    ablate = feature_edited(tiny_backend, sae, "resid_pre.1", [3, 7])
    assert clamp.info.spec == f"{tiny_backend.info.spec}+sae-clamp(site=resid_pre.1,features=3,7,value=500)"
    assert ablate.info.spec.endswith("+sae-ablate(site=resid_pre.1,features=3,7)")
    n_hooks = _hook_count(model)
    replies = _replies_through_engine([tiny_backend, clamp], store)
    assert replies[tiny_backend.info.spec] != replies[clamp.info.spec]  # the clamp was in while generating
    assert _hook_count(model) == n_hooks  # and removed after
