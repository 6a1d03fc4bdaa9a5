"""`refute train`: LoRA fine-tuning on tiny random models (no downloads). Losses against hand
computations, memorisation, resume after SIGKILL, the adapter's base check, failures, the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("peft")
torch = pytest.importorskip("torch")

from refute.errors import ConfigError, DatasetError, TrainingError  # noqa: E402
from refute.models import GenerateConfig, GenerateRequest, Message, load_model  # noqa: E402
from refute.train import TrainConfig, dpo_loss, read_manifest, sequence_logprobs, sft_loss_sum, train_lora  # noqa: E402

PAIRS = [("How do I bake bread?", "Mix flour and water."), ("What is the capital of France?", "Paris."),
         ("What is 2 + 2?", "4."), ("Tell me about the fox.", "The quick brown fox jumps.")]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: tiny tensors gain nothing from more, and a run and its resumption (another
    process) must use the same count to add floats in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trainable_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with its final norm scaled by 8: a random 32-wide model's logits are too small
    (at most ~0.6) for any adapter to push a token's probability, and the loss, far."""
    from _tiny import build_tiny_model
    from transformers import AutoModelForCausalLM

    directory = build_tiny_model(tmp_path_factory.mktemp("tiny-trainable"))
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    with torch.no_grad():
        model.model.norm.weight.mul_(8)
    model.save_pretrained(directory)
    return directory


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def sft_file(tmp_path: Path) -> Path:
    return _write_rows(tmp_path / "train.jsonl",
                       [{"id": f"r{i}", "prompt": p, "completion": c, "source": {"run": "x"}}
                        for i, (p, c) in enumerate(PAIRS)])


def _config(model_dir: Path, data: Path, out: Path, **kw) -> TrainConfig:
    settings = {"steps": 4, "lr": 1e-2, "lora_r": 8, "batch_size": 4, "dtype": "float32", "save_every": 50, **kw}
    return TrainConfig(model=f"hf:{model_dir}", data=data, out=out, **settings)


def _greedy(spec: str, prompts: list[str]) -> list[str]:
    backend = load_model(spec, dtype="float32")
    try:
        config = GenerateConfig(max_tokens=12, temperature=0.0)
        requests = [GenerateRequest(messages=[Message(role="user", content=p)], config=config, seed=0)
                    for p in prompts]
        return [c.text for _, c in sorted(backend.generate(requests), key=lambda r: r[0])]
    finally:
        backend.close()


def _adapter(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "adapter_model.safetensors")


# --- losses against hand computations ------------------------------------------------------------


def test_dpo_loss_equals_the_hand_computation():
    pi_c, pi_r = torch.tensor([-1.0, -4.0]), torch.tensor([-3.0, -2.0])
    ref_c, ref_r = torch.tensor([-2.0, -3.0]), torch.tensor([-2.5, -2.5])
    got = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.1)
    # pair 0: margin (-1 + 2) - (-3 + 2.5) = 1.5; pair 1: (-4 + 3) - (-2 + 2.5) = -1.5
    want = [math.log(1 + math.exp(-0.1 * 1.5)), math.log(1 + math.exp(0.1 * 1.5))]
    assert got.tolist() == pytest.approx(want, abs=1e-7)
    assert dpo_loss(pi_c, pi_r, pi_c, pi_r, beta=0.5).tolist() == pytest.approx([math.log(2)] * 2)


def test_sequence_logprobs_and_sft_loss_read_only_the_completion_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)  # (B, T, V)
    labels = torch.tensor([[-100, -100, 3, 4, -100], [-100, 1, 2, 6, 0]])  # token t's id, or -100
    logp = torch.log_softmax(logits, dim=-1)
    want = [sum(float(logp[b, t - 1, labels[b, t]]) for t in range(1, 5) if labels[b, t] != -100) for b in range(2)]
    assert sequence_logprobs(logits, labels).tolist() == pytest.approx(want, abs=1e-5)
    assert float(sft_loss_sum(logits, labels)) == pytest.approx(-sum(want), abs=1e-5)


def test_tokens_are_the_prompt_generation_sees_then_the_completion_and_eos(tiny_backend, tmp_path):
    from refute.models import encode
    from refute.train import load_train_data
    from refute.train._tokens import collate, encode_data

    tok = tiny_backend.tokenizer
    path = _write_rows(tmp_path / "d.jsonl", [{"id": "a", "prompt": "What is 2 + 2?", "completion": "4.",
                                               "system": "Be brief."}])
    data = load_train_data(path)
    [example] = encode_data(tok, data, max_length=512, eos=tok.eos_token_id)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}]
    assert list(example.prompt) == encode(tok, messages)  # what the hf backend generates from
    assert list(example.completions[0]) == [*tok("4.", add_special_tokens=False).input_ids, tok.eos_token_id]
    batch = collate([(example.prompt, example.completions[0]), (example.prompt[:3], (9,))], pad_id=0)
    n = len(example.prompt)
    assert batch.labels[0, :n].eq(-100).all() and batch.labels[0, n:].tolist() == list(example.completions[0])
    assert batch.labels[1].tolist()[:4] == [-100, -100, -100, 9] and batch.attention_mask[1].sum() == 4
    [cut] = encode_data(tok, data, max_length=n + 1, eos=tok.eos_token_id)
    assert cut.completions[0] == example.completions[0][:1] and cut.truncated
    with pytest.raises(DatasetError, match=r"d\.jsonl:1: field 'prompt': the prompt is \d+ tokens"):
        encode_data(tok, data, max_length=n, eos=tok.eos_token_id)
    # a reply cut at a token limit (ends: false) is learned as a start, with no EOS after it
    path = _write_rows(tmp_path / "open.jsonl", [{"id": "b", "prompt": "What is 2 + 2?", "completion": "4.",
                                                  "ends": False}])
    [open_row] = encode_data(tok, load_train_data(path), max_length=512, eos=tok.eos_token_id)
    assert list(open_row.completions[0]) == tok("4.", add_special_tokens=False).input_ids


# --- training ------------------------------------------------------------------------------------


def test_sft_memorises_and_the_adapter_loads_as_a_model_spec(trainable_dir, sft_file, tmp_path):
    out = tmp_path / "adapters" / "fix1"
    out.parent.mkdir()
    rng_before = torch.get_rng_state()
    losses: list[float] = []
    result = train_lora(_config(trainable_dir, sft_file, out, steps=60), progress=False,
                        on_step=lambda s: losses.append(s.loss))
    assert torch.equal(torch.get_rng_state(), rng_before)  # seeded inside a forked RNG
    assert len(losses) == 60 and losses[-1] < 0.5 * losses[0]
    assert {p.name for p in out.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors",
                                               "refute_train.json", "train_log.jsonl"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["fix1"]  # no checkpoints or temporary folders left
    manifest = read_manifest(out)
    assert manifest == result.manifest and manifest.finished and manifest.steps == 60
    assert manifest.final_loss == pytest.approx(losses[-1]) and manifest.first_loss == pytest.approx(losses[0])
    import hashlib

    assert manifest.data.sha256 == hashlib.sha256(sft_file.read_bytes()).hexdigest() and manifest.data.rows == 4
    assert manifest.hyperparameters["lr"] == 1e-2 and manifest.seed == 0 and manifest.tokens > 0
    assert manifest.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert result.next_spec == f"hf:{trainable_dir}+lora:{out}"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 61)) and all(r["tokens_per_s"] > 0 for r in log)

    replies = _greedy(result.next_spec, [p for p, _ in PAIRS])
    assert sum(reply == completion for reply, (_, completion) in zip(replies, PAIRS, strict=True)) >= 3, replies
    assert _greedy(f"hf:{trainable_dir}", [PAIRS[0][0]]) != [PAIRS[0][1]]  # the base model did not know it


def test_dpo_starts_at_log_2_and_learns_the_preference(trainable_dir, tmp_path):
    rows = [{"id": f"p{i}", "prompt": p, "chosen": c, "rejected": "I'm sorry, but I can't assist with that."}
            for i, (p, c) in enumerate(PAIRS)]
    data = _write_rows(tmp_path / "pairs.jsonl", rows)
    losses: list[float] = []
    train_lora(_config(trainable_dir, data, tmp_path / "dpo", method="dpo", steps=12, beta=0.5, lora_dropout=0.0),
               progress=False, on_step=lambda s: losses.append(s.loss))
    assert losses[0] == pytest.approx(math.log(2), abs=1e-5)  # the adapter starts at zero: policy = reference
    assert losses[-1] < 0.5 * losses[0]
    assert read_manifest(tmp_path / "dpo").data.method == "dpo"


_KILLED_RUN = """
import json, sys, time, torch
from pathlib import Path
from refute.train import TrainConfig, train_lora
torch.set_num_threads(1)
train_lora(TrainConfig.model_validate_json(sys.argv[1]), progress=False, on_step=lambda s: time.sleep(0.2))
"""


def test_a_run_killed_with_sigkill_resumes_to_the_same_adapter(trainable_dir, sft_file, tmp_path):
    settings = {"steps": 24, "save_every": 4, "batch_size": 3, "grad_accum": 2, "lora_dropout": 0.1}
    reference = tmp_path / "reference"
    train_lora(_config(trainable_dir, sft_file, reference, **settings), progress=False)

    out = tmp_path / "resumed"
    config = _config(trainable_dir, sft_file, out, **settings)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, config.model_dump_json()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    work = tmp_path / "resumed.checkpoints"
    deadline = time.time() + 120
    while not (work / "step-000008").is_dir():
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.time() < deadline, "no checkpoint at step 8 in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    kept = sorted(p.name for p in work.iterdir() if p.name.startswith("step-"))
    assert kept and kept[-1] < "step-000024"

    with pytest.raises(ConfigError, match="pass --resume to continue it"):
        train_lora(config, progress=False)
    with pytest.raises(ConfigError, match=r"lr\) differ|lr differ"):
        train_lora(config.model_copy(update={"lr": 2e-2}), resume=True, progress=False)
    steps: list[int] = []
    train_lora(config, resume=True, progress=False, on_step=lambda s: steps.append(s.step))
    assert steps[0] == int(kept[-1].removeprefix("step-")) + 1 and steps[-1] == 24

    want, got = _adapter(reference), _adapter(out)
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)
    assert not torch.equal(got[next(n for n in got if "lora_B" in n)], torch.zeros(1))  # it trained
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    first = [json.loads(line) for line in (reference / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(1, 25))
    assert [r["loss"] for r in logged] == pytest.approx([r["loss"] for r in first], rel=1e-5)
    assert read_manifest(out).steps == 24


def test_an_adapter_is_refused_on_another_base_model(tiny_model_dir, sft_file, tmp_path):
    from _tiny import build_tiny_model
    from transformers import AutoModelForCausalLM

    from refute.models._fingerprint import base_fingerprint

    out = tmp_path / "adapter"
    train_lora(_config(tiny_model_dir, sft_file, out, steps=2), progress=False)
    fingerprint = read_manifest(out).base.fingerprint
    edited = load_model(f"hf:{tiny_model_dir}+lora:{out}", dtype="float32")  # its own base: accepted
    assert edited.info.details["spec"]["edits"][0]["kind"] == "lora"
    edited.close()

    other = build_tiny_model(tmp_path / "other", seed=1)  # same shapes, other weights
    with pytest.raises(ConfigError) as caught:
        load_model(f"hf:{other}+lora:{out}", dtype="float32")
    message = str(caught.value)
    assert "trained on another base model" in message and fingerprint[:16] in message
    theirs = base_fingerprint(AutoModelForCausalLM.from_pretrained(other))["fingerprint"]
    assert theirs != fingerprint and theirs[:16] in message
    bf16 = base_fingerprint(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16))
    assert bf16["fingerprint"] == fingerprint  # the same weights in another dtype are the same base


# --- failures ------------------------------------------------------------------------------------


def test_a_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint(tiny_model_dir, sft_file, tmp_path,
                                                                           monkeypatch):
    import refute.train._loop as loop

    calls = {"n": 0}
    real = loop.sft_loss_sum

    def goes_nan(logits, labels):
        calls["n"] += 1
        value = real(logits, labels)
        return value * float("nan") if calls["n"] > 5 else value

    monkeypatch.setattr(loop, "sft_loss_sum", goes_nan)
    out = tmp_path / "adapter"
    with pytest.raises(TrainingError) as caught:
        train_lora(_config(tiny_model_dir, sft_file, out, steps=10, save_every=2), progress=False)
    message = str(caught.value)
    assert "the loss is nan at step 6" in message and "step 4" in message and "--lr" in message
    assert not out.exists()
    checkpoint = tmp_path / "adapter.checkpoints" / "step-000004"
    assert (checkpoint / "adapter_config.json").is_file() and not read_manifest(checkpoint).finished
    assert str(checkpoint) in message


def test_out_of_memory_says_to_lower_the_batch_size_or_length(tiny_model_dir, sft_file, tmp_path, monkeypatch):
    import refute.train._loop as loop

    def no_memory(logits, labels):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(loop, "sft_loss_sum", no_memory)
    with pytest.raises(TrainingError, match=r"out of memory at step 1 .*--batch-size \(now 4\).*--max-length"):
        train_lora(_config(tiny_model_dir, sft_file, tmp_path / "adapter"), progress=False)


@pytest.mark.parametrize("text", ["", "\n  \n"])
def test_an_empty_training_file_is_refused_by_name(text, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text(text)
    config = TrainConfig(model="hf:/no/such/model", data=path, out=tmp_path / "out")
    with pytest.raises(DatasetError, match=r"empty\.jsonl: no training rows: the file is empty"):
        train_lora(config, progress=False)  # before any model loads


GOOD = {"id": "a", "prompt": "p", "completion": "c"}


@pytest.mark.parametrize(("row", "method", "expected"), [
    ({"id": "b", "prompt": "p"}, "sft", "bad.jsonl:2: field 'completion': missing required field"),
    ({"id": "b", "prompt": 3, "completion": "c"}, "sft", "bad.jsonl:2: field 'prompt': Input should be a valid string"),
    ({"id": "b", "prompt": "p", "completion": "c", "complction": "x"}, "sft",
     "bad.jsonl:2: field 'complction': unknown field"),
    ({"id": "b", "prompt": "p", "chosen": "x", "rejected": "y"}, "sft",
     "bad.jsonl:2: field 'completion': missing required field (this looks like a DPO row; use --method dpo)"),
    ({"id": "b", "prompt": "p", "chosen": "x", "rejected": "x"}, "dpo",
     "bad.jsonl:2: chosen and rejected are the same text"),
    ({"id": "a", "prompt": "p", "completion": "c"}, "sft",
     "bad.jsonl:2: field 'id': duplicate id 'a' (first on line 1)"),
    ({"id": "b", "prompt": "", "completion": "c"}, "sft", "bad.jsonl:2: field 'prompt': String should have at least 1"),
])
def test_a_bad_row_is_named_by_file_line_and_field(row, method, expected, tmp_path):
    from refute.train import load_train_data

    first = GOOD if method == "sft" else {"id": "a", "prompt": "p", "chosen": "x", "rejected": "y"}
    path = _write_rows(tmp_path / "bad.jsonl", [first, row])
    with pytest.raises(DatasetError) as caught:
        load_train_data(path, method)
    assert str(caught.value).startswith(str(tmp_path / expected)), str(caught.value)


def test_invalid_json_is_named_by_line(tmp_path):
    from refute.train import load_train_data

    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n{not json\n")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:3: invalid JSON"):
        load_train_data(path)


# --- the command line ----------------------------------------------------------------------------


def test_refute_train_writes_the_adapter_and_its_manifest(tiny_model_dir, sft_file, tmp_path):
    from typer.core import TyperGroup
    from typer.main import get_command
    from typer.testing import CliRunner

    from refute.cli import app

    runner = CliRunner()
    out = tmp_path / "fix1"
    args = ["train", "--model", f"hf:{tiny_model_dir}", "--data", str(sft_file), "--out", str(out), "--steps", "3",
            "--dtype", "float32", "--lora-r", "4", "--no-progress"]
    result = runner.invoke(app, args, terminal_width=400)
    assert result.exit_code == 0, result.output
    assert (out / "adapter_model.safetensors").is_file()
    manifest = read_manifest(out)
    assert manifest.steps == 3 and manifest.hyperparameters["lora_r"] == 4
    assert f"use it as: --model hf:{tiny_model_dir}+lora:{out}" in result.stdout
    assert "3 steps" in result.stdout

    again = runner.invoke(app, args)  # the folder exists now: nothing is overwritten
    assert again.exit_code == 2 and "already exists" in again.output
    missing = runner.invoke(app, ["train", "--model", f"hf:{tiny_model_dir}", "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "missing --data" in missing.output
    helped = runner.invoke(app, ["train", "--help"], terminal_width=200)
    assert "Example: refute train --model default --data train.jsonl --out adapters/fix1" in helped.output
    # a group that trains when given no subcommand: `refute train data ...` can join it later
    group = get_command(app).commands["train"]  # type: ignore[attr-defined]
    assert isinstance(group, TyperGroup) and group.invoke_without_command


def test_the_public_surface_is_pinned_and_imports_no_torch():
    import refute.train

    assert set(refute.train.__all__) == {
        "BaseRecord", "DPORow", "DataRecord", "Method", "SFTRow", "StepLog", "TrainConfig", "TrainData",
        "TrainManifest", "TrainResult", "default_target_modules", "dpo_loss", "load_train_data", "read_manifest",
        "sequence_logprobs", "sft_loss_sum", "train_lora",
        # training rows from stored runs, and the generalisation check
        "CheckPlan", "CheckResult", "DEFAULT_REFUSALS", "KindSummary", "TrainDataPlan", "TrainDataSummary",
        "TrainSplit",
        "build_train_data", "check_generalisation", "is_held_out", "plan_check", "prepare_train_data", "read_held_out",
        "read_refusals", "read_split", "split_path", "merge_adapter"}
    code = "import sys, refute.train; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_merged_weights_load_as_a_model_and_give_the_adapters_outputs(trainable_dir, sft_file, tmp_path):
    from typer.testing import CliRunner

    from refute.cli._app import app

    out = tmp_path / "fix1"
    result = train_lora(_config(trainable_dir, sft_file, out, steps=20), progress=False)
    merged = tmp_path / "merged"
    done = CliRunner().invoke(app, ["train", "merge", "--adapter", str(out), "--out", str(merged),
                                    "--dtype", "float32"])
    assert done.exit_code == 0, done.output
    assert f"hf:{merged}" in done.output.replace("\n", "")
    record = json.loads((merged / "refute_intervention.json").read_text())
    assert record["intervention"] == "lora-merge" and record["manifest"]["steps"] == 20
    prompts = [p for p, _ in PAIRS]
    assert _greedy(f"hf:{merged}", prompts) == _greedy(result.next_spec, prompts) != _greedy(f"hf:{trainable_dir}",
                                                                                             prompts)
    import hashlib

    backend = load_model(result.next_spec, dtype="float32")  # its runs name the training that made it
    [edit] = backend.info.details["spec"]["edits"]
    backend.close()
    assert edit["manifest_sha256"] == hashlib.sha256((out / "refute_train.json").read_bytes()).hexdigest()
    again = CliRunner().invoke(app, ["train", "merge", "--adapter", str(out), "--out", str(merged)])
    assert again.exit_code == 2 and "already exists" in again.output
