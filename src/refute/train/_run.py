"""`train_lora`: fine-tune a LoRA adapter on a local model, with checkpoints, resume and a manifest.

A run loads the base model (`refute.models.load_model`), wraps it with peft, trains the adapter
(`refute.train._loop`), checkpoints every ``save_every`` steps (`refute.train._checkpoint`), and
writes the adapter, ``refute_train.json`` and ``train_log.jsonl`` into ``out`` in one rename. Every
random draw (LoRA initialisation, dropout, data order) comes from ``config.seed``, inside a forked
RNG, so the global torch generator is left as it was; a run resumed from a checkpoint ends with
the same adapter as one never interrupted.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from refute import __version__
from refute.engine import progress_bar
from refute.errors import ConfigError, ModelNotInstalledError
from refute.models import load_model, parse_spec
from refute.models._fingerprint import TRAIN_MANIFEST, base_fingerprint
from refute.train._checkpoint import (
    atomic_dir,
    clean_partial,
    latest_checkpoint,
    load_state,
    save_checkpoint,
    work_dir,
)
from refute.train._config import TrainConfig
from refute.train._data import TrainData, load_train_data
from refute.train._loop import LoopState, StepLog, run_steps, total_steps
from refute.train._manifest import BaseRecord, DataRecord, TrainManifest, write_json
from refute.train._tokens import Example, encode_data, eos_id

__all__ = ["TrainResult", "default_target_modules", "train_lora"]

#: Attention and MLP projections, by the names model families give them (Llama/Qwen/Gemma, GPT-2).
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "c_attn", "c_proj",
               "c_fc")
LOG = "log.jsonl"


@dataclass(frozen=True)
class TrainResult:
    """The adapter folder and its manifest."""

    out: Path
    manifest: TrainManifest

    @property
    def next_spec(self) -> str:
        """The model spec that loads the adapter: ``BASE+lora:OUT``."""
        return self.manifest.adapter_spec


def default_target_modules(model: Any) -> tuple[str, ...]:
    """The attention and MLP projections ``model`` has (`PROJECTIONS`), as LoRA target names."""
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
             if type(module).__name__ in ("Linear", "Conv1D")}
    found = tuple(name for name in PROJECTIONS if name in names)
    if not found:
        raise ConfigError(f"found none of {', '.join(PROJECTIONS)} in {type(model).__name__}; name the modules "
                          f"to adapt with --target-modules (its linear layers: {', '.join(sorted(names)[:12])})")
    return found


def train_lora(config: TrainConfig, *, resume: bool = False, progress: bool = True,
               on_step: Callable[[StepLog], None] | None = None) -> TrainResult:
    """Train an adapter as ``config`` says; ``resume`` continues from the last checkpoint of an earlier run.

    Everything that can be checked before the model loads is (paths, rows, spec): a `ConfigError`
    or `DatasetError`. A run that goes wrong raises `TrainingError` naming the step and the
    checkpoint it kept.
    """
    work = work_dir(config.out)
    _check_paths(config.out, work, resume)
    data = load_train_data(config.data, config.method)
    _check_spec(config.model)
    try:
        import peft  # noqa: F401 - only whether it is there
    except ImportError as exc:
        raise ModelNotInstalledError("training needs peft: pip install 'refute[lora]'") from exc
    backend = load_model(config.model, dtype=config.dtype, device=config.device)
    try:
        return _train(backend, config, data, work, resume, progress, on_step)
    finally:
        backend.close()


def _check_paths(out: Path, work: Path, resume: bool) -> None:
    if out.exists():
        raise ConfigError(f"--out {out}: already exists; choose another folder, or delete it to train again")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")
    if not os.access(out.parent, os.W_OK):
        raise ConfigError(f"--out {out}: cannot write in {out.parent}")
    found = latest_checkpoint(work)
    if resume and not work.is_dir():
        raise ConfigError(f"--resume: nothing to resume, no {work}; train without --resume")
    if not resume and work.exists():
        where = f"at step {found[0]}, checkpoint {found[1]}" if found else "before its first checkpoint"
        raise ConfigError(f"an earlier training into {out} stopped ({where}); pass --resume to continue it, "
                          f"or delete {work} to start again")


def _check_spec(spec: str) -> None:
    parsed = parse_spec(spec)
    if parsed.kind == "openai":
        raise ConfigError(f"--model {spec}: training needs a local model with weights (default, hf:, gguf:)")
    other = [str(e) for e in parsed.edits if e.kind != "lora"]
    if other:
        raise ConfigError(f"--model {spec}: an adapter is trained on weights, not on activation edits "
                          f"({', '.join(other)}); train on the base model, or BASE+lora:DIR")


def _check_resume(work: Path, key: dict[str, Any]) -> None:
    try:
        saved = json.loads((work / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--resume: cannot read {work / 'run.json'} ({exc}); delete {work} to start again") from exc
    if saved != key:
        changed = sorted(k for k in {**saved.get("config", {}), **key["config"]}
                         if saved.get("config", {}).get(k) != key["config"].get(k))
        changed += [k for k in ("data_sha256", "base_fingerprint", "target_modules") if saved.get(k) != key[k]]
        raise ConfigError(f"--resume: the run in {work} was started with other settings or inputs "
                          f"({', '.join(changed)} differ); resume with the same ones, or delete {work}")


def _schedule(warmup: int, total: int, step: int) -> float:
    """Linear warmup over ``warmup`` steps, then linear decay to 0 at ``total``. Never 0 for a step taken."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def _train(backend: Any, config: TrainConfig, data: TrainData, work: Path, resume: bool, progress: bool,
           on_step: Callable[[StepLog], None] | None) -> TrainResult:
    import peft
    import torch
    import transformers

    model, tokenizer = backend.model, backend.tokenizer
    base = BaseRecord(spec=config.model, revision=backend.info.revision, **base_fingerprint(model))
    eos = eos_id(tokenizer, model)
    examples = encode_data(tokenizer, data, config.max_length, eos)
    pad_id = eos if tokenizer.pad_token_id is None else int(tokenizer.pad_token_id)
    targets = config.target_modules or default_target_modules(model)
    key = {"config": config.resume_key(), "data_sha256": data.sha256, "base_fingerprint": base.fingerprint,
           "target_modules": list(targets)}
    if resume:
        _check_resume(work, key)
    else:
        work.mkdir()
        write_json(work / "run.json", key)
    clean_partial(work, "step-*")
    clean_partial(config.out.parent, config.out.name)
    found = latest_checkpoint(work) if resume else None
    total = total_steps(config, len(examples))
    libraries = {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
    manifest = partial(_manifest, config, base, data, examples, list(targets), total, libraries)
    device = torch.device(config.device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], device_type=device.type):
        torch.manual_seed(config.seed)
        lora = peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                               target_modules=list(targets), task_type="CAUSAL_LM")
        with warnings.catch_warnings():  # peft asks transformers a question it has deprecated
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            policy = peft.get_peft_model(model, lora)
        params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, partial(_schedule, round(config.warmup * total), total))
        state = LoopState()
        if found is not None:
            state = _restore(found[1], policy, optimizer, scheduler, device)
        log = _Log(work / LOG, state.step)

        def checkpoint(now: LoopState) -> None:
            saved = {"loop": now.to_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": torch.get_rng_state(),
                     "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
            folder = work / f"step-{now.step:06d}"
            save_checkpoint(work, now.step, policy, saved,
                            manifest(now, finished=False, spec_dir=folder).model_dump_json(indent=1))

        def last_checkpoint() -> str:
            kept = latest_checkpoint(work)
            again = f"delete {work} (the step log is in it) before training into {config.out} again."
            if kept is None:
                return f"No checkpoint was saved yet (one is saved every {config.save_every} steps); {again}"
            return (f"The last good checkpoint, step {kept[0]}, is kept in {kept[1]} "
                    f"(`{config.model}+lora:{kept[1]}` loads its adapter); {again}")

        with progress_bar("training", total, done=state.step, enabled=progress, unit="steps") as bar:
            def step_done(entry: StepLog) -> None:
                log.write(entry)
                bar.describe(f"training: loss {entry.loss:.4f}, {entry.tokens_per_s:.0f} tokens/s")
                bar.advance()
                if on_step is not None:
                    on_step(entry)

            run_steps(policy, examples, [str(r.id) for r in data.rows], config, state, total=total,
                      optimizer=optimizer, scheduler=scheduler, pad_id=pad_id, checkpoint=checkpoint,
                      last_checkpoint=last_checkpoint, on_step=step_done)
    final = manifest(state, finished=True, spec_dir=config.out)
    with atomic_dir(config.out) as tmp:
        policy.save_pretrained(str(tmp))
        (tmp / TRAIN_MANIFEST).write_text(final.model_dump_json(indent=1), encoding="utf-8")
        shutil.copyfile(work / LOG, tmp / "train_log.jsonl")
    shutil.rmtree(work, ignore_errors=True)
    return TrainResult(config.out, final)


def _restore(folder: Path, policy: Any, optimizer: Any, scheduler: Any, device: Any) -> LoopState:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(policy, load_file(folder / "adapter_model.safetensors", device=str(device)))
    saved = load_state(folder)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    return LoopState(**saved["loop"])


def _manifest(config: TrainConfig, base: BaseRecord, data: TrainData, examples: list[Example], targets: list[str],
              total: int, libraries: dict[str, str], state: LoopState, *, finished: bool,
              spec_dir: Path) -> TrainManifest:
    return TrainManifest(
        refute_version=__version__, libraries=libraries, created=datetime.now(UTC).isoformat(timespec="seconds"),
        finished=finished, base=base,
        data=DataRecord(path=str(config.data), sha256=data.sha256, rows=len(data), method=config.method,
                        truncated=sum(ex.truncated for ex in examples)),
        adapter_spec=f"{config.model}+lora:{spec_dir}", hyperparameters=config.hyperparameters(),
        target_modules=targets, seed=config.seed, steps=state.step, total_steps=total, tokens=state.tokens,
        completion_tokens=state.completion_tokens, first_loss=state.first_loss, final_loss=state.last_loss,
        wall_s=round(state.wall_s, 3))


class _Log:
    """``log.jsonl``: one line a step. A resumed run first drops the lines after its checkpoint."""

    def __init__(self, path: Path, keep_up_to: int) -> None:
        kept = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["step"] <= keep_up_to:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):  # a line cut short by a kill
                    continue
        path.write_text("".join(kept), encoding="utf-8")
        self.path = path

    def write(self, entry: StepLog) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(entry)) + "\n")
