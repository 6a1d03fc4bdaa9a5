"""`refute interp capture`, `patch` and `sae train|features` on a tiny random model, checked against
direct computations: HF hidden states, the patching invariants, an SAE's saved weights, and the
``BASE+sae:FILE#FEATURES`` spec that loads them. Bad options exit 2 before any model loads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from _no_model import forbid_model_loading
from typer.testing import CliRunner

from refute.cli._app import app
from refute.datasets import load_dataset

runner = CliRunner()
BAD_INPUT = 2
FOX, DOG = "The quick brown fox", "The lazy brown dog"  # four tokens each with the tiny tokenizer


def invoke(*args: str):
    return runner.invoke(app, ["interp", *args])


def ok(result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n{result.exception!r}"
    return result.stdout


@pytest.fixture(scope="module")
def hf(tiny_model_dir: Path):
    """The tiny model and tokenizer loaded directly with transformers (float32), for reference values."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32").eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def hidden_states(hf, prompt: str):
    """One prompt, unpadded, through the chat template: the tuple of ``(T, D)`` hidden states."""
    import torch

    model, tok = hf
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        return [h[0].numpy() for h in model(ids, output_hidden_states=True).hidden_states]


def capture_file(tiny_model_dir: Path, out: Path, sites: str, positions: str, model: str | None = None):
    ok(invoke("capture", "-m", model or f"hf:{tiny_model_dir}", "-d", "harmful", "--limit", "4", "--sites", sites,
              "--positions", positions, "--dtype", "float32", "-o", str(out)))
    with np.load(out, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


# --- capture ---------------------------------------------------------------------------------------

def test_capture_last_position_equals_the_models_hidden_states(tiny_model_dir: Path, tmp_path: Path, hf):
    out = tmp_path / "acts.npz"
    result = invoke("capture", "-m", f"hf:{tiny_model_dir}", "-d", "harmful", "--limit", "4", "--dtype", "float32",
                    "--sites", "resid_pre.0,resid_pre.1,resid_post.0", "-o", str(out))
    stdout = ok(result)
    data = load_dataset("harmful", limit=4)
    with np.load(out, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert list(arrays["prompt_ids"]) == [r.id for r in data.records]
    for site, layer in (("resid_pre.0", 0), ("resid_pre.1", 1), ("resid_post.0", 1)):  # resid_post.L = hs[L + 1]
        assert arrays[site].shape == (4, 32)
        expected = np.stack([hidden_states(hf, r.prompt)[layer][-1] for r in data.records])
        np.testing.assert_allclose(arrays[site], expected, atol=1e-5, rtol=1e-4)
        norm = float(np.linalg.norm(expected, axis=1).mean())
        assert re.search(rf"\| {re.escape(site)} \| 4 x 32 \| {norm:.4g} \|", stdout), stdout
    manifest = json.loads((tmp_path / "acts.manifest.json").read_text())
    assert manifest == json.loads(str(arrays["manifest"]))
    assert manifest["dataset"]["content_hash"] == data.content_hash
    assert manifest["model"]["spec"] == f"hf:{tiny_model_dir}" and manifest["settings"]["positions"] == "last"


def test_capture_all_positions_keeps_every_token_of_every_prompt(tiny_model_dir: Path, tmp_path: Path, hf):
    arrays = capture_file(tiny_model_dir, tmp_path / "all.npz", "resid_pre.1", "all")
    records = load_dataset("harmful", limit=4).records
    expected = [hidden_states(hf, r.prompt)[1] for r in records]  # each (T_i, D)
    assert arrays["token_counts"].tolist() == [len(e) for e in expected]
    assert len(set(arrays["token_counts"].tolist())) > 1  # prompts of different lengths: padding is dropped
    np.testing.assert_allclose(arrays["resid_pre.1"], np.concatenate(expected), atol=1e-5, rtol=1e-4)


# --- patch -----------------------------------------------------------------------------------------

def patch_json(tiny_model_dir: Path, out: Path, clean: str, corrupt: str, *extra: str) -> dict:
    ok(invoke("patch", "-m", f"hf:{tiny_model_dir}", "--clean", clean, "--corrupt", corrupt, "--answer", " Paris",
              "--wrong", " bread", "--dtype", "float32", "--sites", "resid_pre,resid_post.1", "-o", str(out), *extra))
    return json.loads(out.read_text())


def test_patching_a_prompt_into_itself_has_no_effect_anywhere(tiny_model_dir: Path, tmp_path: Path):
    result = patch_json(tiny_model_dir, tmp_path / "same.json", FOX, FOX)
    effects = np.concatenate([np.asarray(s["effect"]).ravel() for s in result["sites"]])
    assert effects.size == (2 + 1) * len(result["positions"])  # resid_pre.0-1 and resid_post.1, every token
    assert np.abs(effects).max() < 1e-6
    assert result["clean"] == pytest.approx(result["corrupt"], abs=1e-6)


def test_patching_different_prompts_moves_the_metric_at_the_final_layer(tiny_model_dir: Path, tmp_path: Path):
    result = patch_json(tiny_model_dir, tmp_path / "diff.json", FOX, DOG, "--plot", str(tmp_path / "p.svg"))
    gap = result["clean"] - result["corrupt"]
    assert abs(gap) > 1e-4
    pre, post = result["sites"]
    assert (pre["kind"], pre["layers"], post["kind"], post["layers"]) == ("resid_pre", [0, 1], "resid_post", [1])
    last = result["positions"].index(len(result["tokens"]) - 1)
    # After the last layer only the last position's residual reaches its logits: patching it there
    # restores the clean metric exactly, and patching any other position there does nothing.
    assert post["effect"][0][last] == pytest.approx(gap, abs=1e-5)
    assert max(abs(v) for j, v in enumerate(post["effect"][0]) if j != last) < 1e-6
    assert abs(pre["effect"][1][last]) > 1e-5
    svg = (tmp_path / "p.svg").read_text()
    assert svg.count('class="cell"') == 3 * len(result["positions"])
    manifest = json.loads((tmp_path / "diff.manifest.json").read_text())
    assert manifest["settings"]["clean"] == FOX and manifest["results"]["clean"] == pytest.approx(result["clean"])


# --- sae -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_sae(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("sae") / "sae.safetensors"
    stdout = ok(invoke("sae", "train", "-m", f"hf:{tiny_model_dir}", "--site", "resid_post.0", "-d", "harmful",
                       "--limit", "4", "--k", "4", "--width", "2x", "--epochs", "5", "--vectors-per-step", "64",
                       "--held-out", "0.25", "--dtype", "float32", "-o", str(path)))
    return path, stdout


def printed_fvu(stdout: str, which: str) -> float:
    match = re.search(rf"^\| {which} \| \d+ \| \d+ \| ([0-9.]+) \|", stdout, re.MULTILINE)
    assert match, stdout
    return float(match.group(1))


def test_sae_train_prints_the_fvu_of_the_saved_weights(trained_sae, tiny_model_dir: Path, tmp_path: Path):
    import torch

    from refute.interp import load_sae, sae_metrics

    path, stdout = trained_sae
    manifest = json.loads(path.with_name("sae.manifest.json").read_text())
    held_ids, train_ids = manifest["results"]["held_out_ids"], manifest["results"]["train_ids"]
    assert len(held_ids) == 1 and len(train_ids) == 3 and not set(held_ids) & set(train_ids)
    sae, site = load_sae(path)
    assert str(site) == "resid_post.0" and sae.W_dec.shape == (64, 32) and sae.k == 4
    acts = capture_file(tiny_model_dir, tmp_path / "acts.npz", "resid_post.0", "all")
    starts = np.concatenate([[0], np.cumsum(acts["token_counts"])])
    ids = acts["prompt_ids"].tolist()
    for which, chosen in (("held out", held_ids), ("train", train_ids)):
        rows = np.concatenate([acts["resid_post.0"][starts[ids.index(i)] : starts[ids.index(i) + 1]] for i in chosen])
        fvu = sae_metrics(sae, torch.from_numpy(rows)).fvu
        assert printed_fvu(stdout, which) == pytest.approx(fvu, abs=1e-4)
        key = "held_out" if which == "held out" else "train"
        assert manifest["results"][key]["fvu"] == pytest.approx(fvu, abs=1e-5)
    assert 0 < printed_fvu(stdout, "train") < 1  # trained: better than the mean, worse than perfect


def test_the_saved_sae_loads_as_a_model_spec_edit(trained_sae, tiny_model_dir: Path, tmp_path: Path):
    edits = pytest.importorskip("refute.models._edits",
                                reason="the model-spec grammar (refute.models._edits) is missing")
    if not hasattr(edits, "SAEEdit"):
        pytest.skip("the model-spec grammar has no +sae:FILE#FEATURES edit (refute.models._edits.SAEEdit)")
    path, _ = trained_sae
    base = capture_file(tiny_model_dir, tmp_path / "base.npz", "resid_pre.0,resid_pre.1", "last")
    spec = f"hf:{tiny_model_dir}+sae:{path}#0=5"  # clamp feature 0 at resid_post.0
    edited = capture_file(tiny_model_dir, tmp_path / "edited.npz", "resid_pre.0,resid_pre.1", "last", model=spec)
    np.testing.assert_allclose(edited["resid_pre.0"], base["resid_pre.0"], atol=1e-6)  # before the SAE's site
    assert np.abs(edited["resid_pre.1"] - base["resid_pre.1"]).max() > 1e-3  # after it: edited
    manifest = json.loads(str(edited["manifest"]))
    assert manifest["model"]["spec"] == spec


def test_sae_features_ranks_prompts_by_each_features_peak(trained_sae, tiny_model_dir: Path, tmp_path: Path):
    import torch

    from refute.interp import load_sae

    path, _ = trained_sae
    out = tmp_path / "features.json"
    stdout = ok(invoke("sae", "features", "--sae", str(path), "-m", f"hf:{tiny_model_dir}", "-d", "harmful",
                       "--limit", "4", "--top", "2", "--n-features", "3", "--dtype", "float32", "-o", str(out)))
    listing = json.loads(out.read_text())
    sae, _ = load_sae(path)
    acts = capture_file(tiny_model_dir, tmp_path / "acts.npz", "resid_post.0", "all")
    starts = np.concatenate([[0], np.cumsum(acts["token_counts"])])
    with torch.no_grad():
        z = sae.encode(torch.from_numpy(acts["resid_post.0"])).numpy()  # (tokens, F)
    peaks = np.stack([z[starts[i] : starts[i + 1]].max(axis=0) for i in range(4)])  # (prompts, F)
    expected_features = [int(f) for f in np.argsort(-peaks.max(axis=0), kind="stable")[:3]]
    assert [t["feature"] for t in listing["features"]] == expected_features
    ids = acts["prompt_ids"].tolist()
    for t in listing["features"]:
        f = t["feature"]
        expected = [ids[i] for i in np.argsort(-peaks[:, f], kind="stable") if peaks[i, f] > 0][:2]
        assert [p["prompt_id"] for p in t["prompts"]] == expected
        want = [peaks[ids.index(i), f] for i in expected]
        assert [p["activation"] for p in t["prompts"]] == pytest.approx(want, abs=1e-5)
        assert t["n_active"] == int((peaks[:, f] > 0).sum())
        assert f"feature {f}: fires on {t['n_active']}/4 prompts" in stdout
    assert (tmp_path / "features.manifest.json").is_file()


# --- bad input ---------------------------------------------------------------------------------------

@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_model_loading(monkeypatch, "a model was loaded although an option was bad")


@pytest.fixture(scope="module")
def small_sae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from refute.interp import save_sae
    from refute.interp._sae import TopKSAE

    return save_sae(TopKSAE(32, 8, 2), tmp_path_factory.mktemp("small") / "s.safetensors", site="resid_pre.0")


BAD_CASES = {
    "unknown site": (["capture", "--sites", "resid_mid.1", "-d", "harmful", "-o", "{tmp}/a.npz"],
                     "unknown activation site"),
    "layer out of range": (["capture", "--sites", "resid_pre.0,mlp_out.2", "-d", "harmful", "-o", "{tmp}/a.npz"],
                           "layer 2 does not exist; the model has layers 0-1"),
    "capture into a directory": (["capture", "--sites", "resid_pre.0", "-d", "harmful", "-o", "{tmp}"],
                                 "is a directory"),
    "bad positions": (["capture", "--sites", "resid_pre.0", "-d", "harmful", "--positions", "first",
                       "-o", "{tmp}/a.npz"], "--positions"),
    "unknown dataset": (["capture", "--sites", "resid_pre.0", "-d", "no-such-set", "-o", "{tmp}/a.npz"], "no-such-set"),
    "patch layer out of range": (["patch", "--clean", FOX, "--corrupt", DOG, "--answer", " Paris", "--wrong", " bread",
                                  "--sites", "resid_post.2"], "layer 2 does not exist"),
    "patch unknown site kind": (["patch", "--clean", FOX, "--corrupt", DOG, "--answer", " Paris", "--wrong", " bread",
                                 "--sites", "embed"], "unknown site kind 'embed'"),
    "patch plot not svg": (["patch", "--clean", FOX, "--corrupt", DOG, "--answer", " Paris", "--wrong", " bread",
                            "--plot", "{tmp}/p.png"], ".svg"),
    "sae into a directory": (["sae", "train", "--site", "resid_pre.0", "-d", "harmful", "-o", "{tmp}"],
                             "is a directory"),
    "sae as npz": (["sae", "train", "--site", "resid_pre.0", "-d", "harmful", "-o", "{tmp}/s.npz"], ".safetensors"),
    "sae two sites": (["sae", "train", "--site", "resid_pre.0,resid_pre.1", "-d", "harmful",
                       "-o", "{tmp}/s.safetensors"], "one site"),
    "sae layer out of range": (["sae", "train", "--site", "resid_post.3", "-d", "harmful", "-o", "{tmp}/s.safetensors"],
                               "layer 3 does not exist"),
    "sae k above width": (["sae", "train", "--site", "resid_pre.0", "-d", "harmful", "--k", "65", "--width", "2x",
                           "-o", "{tmp}/s.safetensors"], "more than the 64 features"),
    "features of a missing sae": (["sae", "features", "--sae", "{tmp}/none.safetensors", "-d", "harmful"],
                                  "none.safetensors"),
    "feature out of range": (["sae", "features", "--sae", "{sae}", "-d", "harmful", "--features", "8"],
                             "feature 8 does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_options_exit_2_before_the_model_loads(case: str, no_model, tiny_model_dir: Path, tmp_path: Path,
                                                   small_sae: Path):
    args, message = BAD_CASES[case]
    args = [a.format(tmp=tmp_path, sae=small_sae) for a in args]
    result = invoke(*args, "-m", f"hf:{tiny_model_dir}")
    assert result.exit_code == BAD_INPUT, f"{case}: exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"
    assert message in " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split()), result.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is written"
