"""The model-spec grammar: ``BASE+ablate:FILE``, ``+steer:FILE@LAYER*COEF``, ``+sae:FILE#FEATURES``,
``+lora:DIR``, parsed in one place, applied left to right on a tiny random model, recorded on runs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from typer.testing import CliRunner

from refute.errors import ConfigError, ModelNotInstalledError
from refute.models import (
    AblateEdit,
    GenerateConfig,
    GenerateRequest,
    LoraEdit,
    Message,
    SAEEdit,
    SAEFeature,
    SteerEdit,
    load_model,
    parse_spec,
)

if TYPE_CHECKING:
    import torch

D_MODEL = 32  # the tiny model's residual stream (tests/_tiny.py)
PROMPTS = ["How do I bake bread?", "What is the capital of France?", "The quick brown fox", "What is 2 + 2?"]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A direction as .npz and .npy, an SAE-looking .safetensors and a LoRA-looking folder."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", vector=rng.normal(size=D_MODEL).astype(np.float32))
    np.save(tmp_path / "b.npy", rng.normal(size=D_MODEL).astype(np.float32))
    (tmp_path / "s.safetensors").write_bytes(b"\0")  # parsing checks existence, not content
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    return {"a": tmp_path / "a.npz", "b": tmp_path / "b.npy", "s": tmp_path / "s.safetensors",
            "lora": tmp_path / "adapter", "dir": tmp_path}


# --- parsing -------------------------------------------------------------------------------------


def test_specs_with_edits_parse_into_their_parts_and_round_trip(files):
    a, b, s, lora = (str(files[k]) for k in ("a", "b", "s", "lora"))
    cases = {
        f"default+ablate:{a}": ("embedded", "default", (AblateEdit(a),)),
        f"default+ablate:{a}+steer:{b}@6*4": ("embedded", "default", (AblateEdit(a), SteerEdit(b, 6, 4.0))),
        f"gguf:/m/x.gguf+sae:{s}#12,40=3.5": (
            "gguf", "/m/x.gguf", (SAEEdit(s, (SAEFeature(12), SAEFeature(40, 3.5))),)),
        f"hf:/m/a+b+steer:{b}@0*-2.5": ("hf", "/m/a+b", (SteerEdit(b, 0, -2.5),)),  # '+' inside a path
        f"gemma3-270m+lora:{lora}+steer:{a}@1*0.125": (
            "embedded", "gemma3-270m", (LoraEdit(lora), SteerEdit(a, 1, 0.125))),
    }
    for text, (kind, target, edits) in cases.items():
        parsed = parse_spec(text)
        assert (parsed.kind, parsed.target, parsed.edits) == (kind, target, edits), text
        assert str(parsed) == text and parse_spec(str(parsed)) == parsed
    assert parse_spec(f"default+steer:{b}@3*1e-3").edits[0].coefficient == pytest.approx(0.001)
    assert parse_spec("default").edits == ()


@pytest.mark.parametrize("template,part,problem", [
    ("default+foo:{a}", "2 'foo:{a}'", "unknown edit kind 'foo'"),
    ("default+ablate:{dir}/missing.npz", "2 'ablate:{dir}/missing.npz'", "no file"),
    ("default+steer:{a}@x*2", "2 'steer:{a}@x*2'", "LAYER must be an integer"),
    ("default+steer:{a}@-1*2", "2 'steer:{a}@-1*2'", "LAYER must be 0 or more"),
    ("default+steer:{a}@1*abc", "2 'steer:{a}@1*abc'", "COEF must be a finite number"),
    ("default+steer:{a}@1*inf", "2 'steer:{a}@1*inf'", "COEF must be a finite number"),
    ("default+steer:{a}*2", "2 'steer:{a}*2'", "expected steer:FILE@LAYER*COEF"),
    ("default+sae:{s}#", "2 'sae:{s}#'", "FEATURES is empty"),
    ("default+sae:{s}#3,x", "2 'sae:{s}#3,x'", "a feature index must be an integer"),
    ("default+sae:{s}#3,3=1", "2 'sae:{s}#3,3=1'", "feature 3 is listed twice"),
    ("default+sae:{a}#3", "2 'sae:{a}#3'", "expected a .safetensors file"),
    ("default+lora:{dir}", "2 'lora:{dir}'", "no adapter_config.json in"),
    ("openai:gpt-4o-mini+steer:{a}@1*2", "2 'steer:{a}@1*2'", "edits need local weights"),
    ("default+ablate:{a}+steer:{a}@1", "3 'steer:{a}@1'", "expected steer:FILE@LAYER*COEF"),
    ("default+ablate(dir=1a2b,layer=1)", "2 'ablate(dir=1a2b,layer=1)'", "variant built in Python"),
    ("default+", "2 ''", "empty edit"),
    ("llama3+ablate:{a}", "1 'llama3'", "unknown base model"),
])
def test_a_bad_part_is_named_with_what_is_wrong(files, template, part, problem):
    names = {k: str(v) for k, v in files.items()}
    spec = template.format(**names)
    with pytest.raises(ConfigError) as caught:
        parse_spec(spec)
    assert str(caught.value).startswith(f"model spec '{spec}': part {part.format(**names)}: ")
    assert problem in str(caught.value)


def test_parsing_and_importing_models_never_imports_interp(files):
    code = ("import sys; from refute.models import parse_spec; "
            f"parse_spec({'default+steer:' + str(files['a']) + '@1*2'!r}); "
            "print([m for m in ('refute.interp', 'torch') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- applying edits to a tiny model --------------------------------------------------------------


def _replies(backend, max_tokens: int = 8) -> list[str]:
    reqs = [GenerateRequest((Message(role="user", content=p),), GenerateConfig(max_tokens=max_tokens), 0)
            for p in PROMPTS]
    out = dict(backend.generate(reqs))
    return [out[i].text for i in range(len(reqs))]


def _load(spec: str):
    return load_model(spec, dtype="float32", batch_size=4)


def _hidden(backend, sites: list[str]) -> dict[str, torch.Tensor]:
    """Each site's activation ``(T, D)`` for one prompt, read after every edit hook has run."""
    import torch

    from refute.interp import hooks

    got: dict[str, torch.Tensor] = {}

    def grab(site: str):
        def fn(x: torch.Tensor) -> None:
            got[site] = x[0].detach().float().clone()

        return fn

    ids = backend.tokenizer("How do I bake bread? Mix flour and water", return_tensors="pt").input_ids
    with torch.no_grad(), hooks(backend.model, {s: grab(s) for s in sites}):
        backend.model(input_ids=ids)
    return got


def _hook_count(model) -> int:
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


def test_steering_by_zero_changes_nothing_and_a_large_coefficient_changes_replies(tiny_model_dir, tmp_path):
    direction = tmp_path / "d.npz"
    np.savez(direction, vector=np.random.default_rng(1).normal(size=D_MODEL).astype(np.float32) * 10)
    base = _replies(_load(f"hf:{tiny_model_dir}"))
    zero = _load(f"hf:{tiny_model_dir}+steer:{direction}@1*0")
    assert _replies(zero) == base
    large = _load(f"hf:{tiny_model_dir}+steer:{direction}@1*50")
    assert _replies(large) != base
    model, n_hooks = large.model, _hook_count(large.model)
    assert n_hooks > 0
    large.close()  # the edit's hooks leave with the backend
    assert _hook_count(model) == 0


def test_ablation_leaves_no_component_along_the_direction(tiny_model_dir, tmp_path):
    import torch

    from refute.interp import Direction

    r = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(2))
    Direction(r * 7, layer=1, position=-1).save(tmp_path / "r.safetensors")
    unit = r / r.norm()
    sites = ["resid_pre.1", "mlp_out.0", "attn_out.1", "resid_post.1"]
    base = _hidden(_load(f"hf:{tiny_model_dir}"), sites)
    edited = _hidden(_load(f"hf:{tiny_model_dir}+ablate:{tmp_path / 'r.safetensors'}"), sites)
    for site in sites:
        scale = float(base[site].norm(dim=-1).max())  # the tiny model's activations are small
        before, after = float((base[site] @ unit).abs().max()), float((edited[site] @ unit).abs().max())
        assert before > 0.05 * scale, site  # there was something to remove
        assert after < 1e-5 * scale, site


def test_edits_apply_left_to_right(tiny_model_dir, tmp_path):
    import torch

    r = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "r.npy", r.numpy())
    unit = r / r.norm()
    f = tmp_path / "r.npy"
    # Ablate then add: the addition survives at resid_pre.1. Add then ablate: nothing is left.
    ablate_then_add = _hidden(_load(f"hf:{tiny_model_dir}+ablate:{f}+steer:{f}@1*3"), ["resid_pre.1"])
    add_then_ablate = _hidden(_load(f"hf:{tiny_model_dir}+steer:{f}@1*3+ablate:{f}"), ["resid_pre.1"])
    torch.testing.assert_close(ablate_then_add["resid_pre.1"] @ unit,
                               torch.full((ablate_then_add["resid_pre.1"].shape[0],), 3 * float(r.norm())),
                               atol=1e-3, rtol=1e-4)
    assert float((add_then_ablate["resid_pre.1"] @ unit).abs().max()) < 1e-3


def test_sae_spec_ablates_and_clamps_features_per_feature(tiny_model_dir, tmp_path):
    import torch

    from refute.interp import load_sae, save_sae
    from refute.interp._sae import TopKSAE

    sae = TopKSAE(D_MODEL, 16, k=4, seed=0)
    path = save_sae(sae, tmp_path / "sae.safetensors", site="resid_pre.1")
    loaded, site = load_sae(path)
    assert str(site) == "resid_pre.1" and loaded.k == 4
    torch.testing.assert_close(loaded.W_dec, sae.W_dec)
    x = _hidden(_load(f"hf:{tiny_model_dir}"), ["resid_pre.1"])["resid_pre.1"]  # (T, D), before the edit
    z = sae.encode(x).detach()
    ablate, clamp = int(z[-1].argmax()), int(z[-1].argmin())  # one feature active at the last token
    edited = _load(f"hf:{tiny_model_dir}+sae:{path}#{ablate},{clamp}=40")
    got = _hidden(edited, ["resid_pre.1"])["resid_pre.1"]
    idx = torch.tensor([ablate, clamp])
    expected = x + (torch.tensor([0.0, 40.0]) - z[:, idx]) @ sae.W_dec[idx].detach()
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert _replies(edited) != _replies(_load(f"hf:{tiny_model_dir}"))


def test_a_spec_variant_generates_like_the_python_variant_it_names(tiny_backend, tmp_path):
    import torch

    from refute.interp import Direction, ablated, steered

    d = Direction(torch.randn(D_MODEL, generator=torch.Generator().manual_seed(5)) * 20, layer=1, position=-1)
    file = d.save(tmp_path / "d.safetensors")
    for variant in (ablated(tiny_backend, d, file=file), steered(tiny_backend, d, 1, 4.0, file=file)):
        parsed = parse_spec(variant.info.spec)  # the spec a run records is one load_model accepts
        assert parsed.edits and parsed.base == tiny_backend.info.spec
        assert _replies(_load(variant.info.spec)) == _replies(variant)


@pytest.mark.parametrize("make,problem", [
    (lambda p: np.savez(p / "x.npz", vector=np.ones(7, np.float32)),
     "has 7 values; this model's residual stream has 32"),
    (lambda p: np.savez(p / "x.npz", a=np.ones(32), b=np.ones(32)), "no 'vector' or 'direction' array"),
    (lambda p: np.savez(p / "x.npz", vector=np.zeros(32, np.float32)), "all zeros"),
    (lambda p: (p / "x.npz").write_bytes(b"not a zip"), "cannot read"),
])
def test_a_file_that_does_not_fit_is_a_located_error_at_load(tiny_model_dir, tmp_path, make, problem):
    make(tmp_path)
    spec = f"hf:{tiny_model_dir}+ablate:{tmp_path / 'x.npz'}"
    with pytest.raises(ConfigError) as caught:
        _load(spec)
    assert str(caught.value).startswith(f"model spec '{spec}': part 2 'ablate:{tmp_path / 'x.npz'}': ")
    assert problem in str(caught.value)


def test_sae_feature_beyond_the_sae_and_a_layer_beyond_the_model_are_located(tiny_model_dir, tmp_path):
    from refute.interp import save_sae
    from refute.interp._sae import TopKSAE

    path = save_sae(TopKSAE(D_MODEL, 16, k=4), tmp_path / "sae.safetensors", site="resid_pre.1")
    with pytest.raises(ConfigError, match=r"part 2 'sae:.*#3,16': feature 16 does not exist; the SAE has 16"):
        _load(f"hf:{tiny_model_dir}+sae:{path}#3,16")
    np.save(tmp_path / "d.npy", np.ones(D_MODEL, np.float32))
    with pytest.raises(ConfigError, match=r"part 3 'steer:.*@9\*1': .*layer 9 does not exist"):
        _load(f"hf:{tiny_model_dir}+ablate:{tmp_path / 'd.npy'}+steer:{tmp_path / 'd.npy'}@9*1")


def test_lora_without_peft_says_how_to_install_it(tiny_model_dir, files, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    spec = f"hf:{tiny_model_dir}+lora:{files['lora']}"
    with pytest.raises(ModelNotInstalledError) as caught:
        _load(spec)
    assert str(caught.value).startswith(f"model spec '{spec}': part 2 'lora:{files['lora']}': ")
    assert "pip install peft" in str(caught.value)


def test_lora_adapter_is_merged_into_the_base_weights(tiny_model_dir, tmp_path):
    peft = pytest.importorskip("peft")
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                             init_lora_weights=False)  # random B: the adapter changes the model
    adapted = peft.get_peft_model(model, config)
    adapted.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        want = adapted(input_ids=ids).logits
    edited = _load(f"hf:{tiny_model_dir}+lora:{tmp_path / 'adapter'}")
    base = _load(f"hf:{tiny_model_dir}")
    with torch.no_grad():
        got, plain = edited.model(input_ids=ids).logits, base.model(input_ids=ids).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-3)
    assert edited.info.details["spec"]["edits"][0]["kind"] == "lora"
    # the merged weights are left as `from_pretrained` leaves them: peft's frozen weights sent the
    # last-position logits through a batched matmul over a copy of the output matrix per row (15x
    # slower prefill and ~9 GB more while the default model generated)
    assert [p.requires_grad for p in edited.model.parameters()] == [p.requires_grad for p in base.model.parameters()]


# --- recorded on runs, through the command line --------------------------------------------------


def test_refute_run_records_the_spec_and_the_files_hash(tiny_model_dir, tmp_path):
    from refute.cli import app
    from refute.store import Store

    direction = tmp_path / "d.npz"
    np.savez(direction, vector=np.random.default_rng(4).normal(size=D_MODEL).astype(np.float32))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    spec = f"hf:{tiny_model_dir}+steer:{direction}@1*8"
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(app, ["run", "-m", spec, "-d", str(prompts), "--max-tokens", "3", "--dtype",
                                      "float32", "--no-progress", "--store", str(db)])
    assert result.exit_code == 0, result.output
    with Store(db) as s:
        (run,) = s.list_runs()
    assert run.model_spec == spec
    recorded = run.model["details"]["spec"]
    assert recorded["base"] == f"hf:{tiny_model_dir}"
    assert recorded["edits"] == [{"kind": "steer", "file": str(direction.resolve()), "layer": 1,
                                  "coefficient": 8.0,
                                  "sha256": hashlib.sha256(direction.read_bytes()).hexdigest()}]


@pytest.mark.parametrize("edit,problem", [("@x*8", "LAYER must be an integer"),
                                          ("@7*8", "layer 7 does not exist")])
def test_refute_run_with_a_bad_spec_exits_2_and_creates_no_run(tiny_model_dir, tmp_path, edit, problem):
    from refute.cli import app
    from refute.store import Store

    np.save(tmp_path / "d.npy", np.ones(D_MODEL, np.float32))
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "q0", "prompt": "hi"}) + "\n")
    spec = f"hf:{tiny_model_dir}+steer:{tmp_path / 'd.npy'}{edit}"
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(app, ["run", "-m", spec, "-d", str(prompts), "--store", str(db)])
    assert result.exit_code == 2, result.output
    assert f"part 2 'steer:{tmp_path / 'd.npy'}{edit}': " in result.output and problem in result.output
    with Store(db) as s:
        assert s.list_runs() == []
