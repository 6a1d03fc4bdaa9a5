"""`refute train`: fine-tune a LoRA adapter on a local model (SFT or DPO).

`refute train` is a command group that trains when it is given no subcommand, so that
subcommands (`refute train data ...`, building training rows from runs) can join it later without
changing how training is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from refute.cli._common import ExitCode, bad_input, err, finite, friendly_errors, out
from refute.train import Method, TrainConfig, merge_adapter, train_lora
from refute.train._check import validate_transforms

train_app = typer.Typer(invoke_without_command=True)


@train_app.callback()
@friendly_errors
def train(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option("--data", help="JSONL rows: SFT {id, prompt, completion} or DPO {id, prompt, chosen, rejected}; optional system and source.", show_default=False)] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder to write the adapter into (must not exist; its parent must).", show_default=False)] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="The base model: default, hf:REPO_OR_DIR, gguf:FILE, optionally +lora:DIR.")] = "default",
    method: Annotated[Method, typer.Option(help="sft: cross-entropy on the completions; dpo: direct preference optimisation.")] = "sft",
    epochs: Annotated[int, typer.Option(help="Passes over the data (unless --steps).", min=1)] = 3,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps; overrides --epochs.", min=1, show_default=False)] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW; linear warmup, then linear decay).", min=0.0, callback=finite)] = 2e-4,
    batch_size: Annotated[int, typer.Option(help="Rows per forward pass (DPO: pairs).", min=1)] = 4,
    grad_accum: Annotated[int, typer.Option(help="Forward passes per optimizer step.", min=1)] = 1,
    max_length: Annotated[int, typer.Option(help="Most tokens in prompt plus completion; longer completions are cut.", min=2)] = 512,
    warmup: Annotated[float, typer.Option(help="Fraction of the steps the learning rate rises over.", min=0.0, max=1.0, callback=finite)] = 0.1,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.", min=1)] = 16,
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha (the update is scaled by alpha / r).", min=1)] = 32,
    lora_dropout: Annotated[float, typer.Option(help="Dropout on the LoRA input.", min=0.0, max=0.99, callback=finite)] = 0.05,
    target_modules: Annotated[str | None, typer.Option(help="Comma-separated module names to adapt (default: the attention and MLP projections).", show_default=False)] = None,
    beta: Annotated[float, typer.Option(help="DPO: strength of the pull towards the base model.", callback=finite)] = 0.1,
    seed: Annotated[int, typer.Option(help="LoRA initialisation, dropout and data order derive from it.", min=0)] = 0,
    dtype: Annotated[str, typer.Option(help="Base weights: auto (bf16 where the CPU supports it), float32, bfloat16.")] = "auto",
    save_every: Annotated[int, typer.Option(help="Steps between checkpoints (in OUT.checkpoints/).", min=1)] = 50,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint (same options).")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    hold_out_transforms: Annotated[str | None, typer.Option("--hold-out-transforms", help="Then run `refute train check` with these held-out transforms (comma-separated), same model, seed and dtype.", show_default=False)] = None,
) -> None:
    """Train a LoRA adapter on prompt/completion rows (or preference pairs), and save it with a manifest.

    The loss is on the completion tokens only; the prompt is rendered with the model's chat template,
    exactly as generation sees it. Checkpoints every --save-every steps survive a kill; rerun the same
    command with --resume to continue. The adapter, refute_train.json (base model fingerprint, data
    hash, settings, losses) and train_log.jsonl appear in --out only once training has finished.

    Example: refute train --model default --data train.jsonl --out adapters/fix1 --steps 200

    Then: refute run --model default+lora:adapters/fix1 ...
    """
    if ctx.invoked_subcommand is not None:
        return
    if data is None or out_dir is None:
        missing = [name for name, value in (("--data", data), ("--out", out_dir)) if value is None]
        raise typer.BadParameter(f"missing {' and '.join(missing)}; see refute train --help",
                                 param_hint=" / ".join(missing))
    with bad_input():  # every setting is checked before a model loads
        config = TrainConfig(
            model=model, data=data, out=out_dir, method=method, epochs=epochs, steps=steps, lr=lr,
            batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, warmup=warmup, lora_r=lora_r,
            lora_alpha=lora_alpha, lora_dropout=lora_dropout, beta=beta, seed=seed, dtype=dtype,
            save_every=save_every,
            target_modules=tuple(m.strip() for m in target_modules.split(",")) if target_modules is not None else None,
        )
    if hold_out_transforms is not None:
        with bad_input():  # a typo here must not cost a training run
            validate_transforms(hold_out_transforms.split(","))
    try:
        result = train_lora(config, resume=resume, progress=progress)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]: checkpoints are kept; continue with the same command and --resume "
                  f"(they are in {escape(str(out_dir))}.checkpoints)", highlight=False, soft_wrap=True)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    m = result.manifest
    losses = f"loss {m.first_loss:.4f} -> {m.final_loss:.4f}" if m.first_loss is not None and m.final_loss is not None else ""
    out.print(f"trained {escape(str(result.out))}: {m.steps} steps, {m.tokens} tokens, {losses}, {m.wall_s:.1f} s "
              f"({m.data.rows} rows, {m.data.method}, base fingerprint {m.base.fingerprint[:16]})",
              highlight=False, soft_wrap=True)
    if m.data.truncated:
        err.print(f"[yellow]note[/]: {m.data.truncated} completions were cut to fit --max-length {max_length}",
                  highlight=False)
    out.print(f"use it as: --model {escape(result.next_spec)}", highlight=False, soft_wrap=True)
    if hold_out_transforms is not None:
        from refute.cli._train_check import run_check  # deferred: it adds itself to train_app, importing this module

        run_check(result.out, base=model, hold_out_transforms=hold_out_transforms, seed=seed, dtype=dtype,
                  progress=progress)


@train_app.command("merge")
@friendly_errors
def merge(
    adapter: Annotated[Path, typer.Option("--adapter", help="The adapter folder `refute train` wrote.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the merged model (must not exist).")],
    base: Annotated[str | None, typer.Option("--base", help="Base model spec (default: the one in the adapter's manifest).", show_default=False)] = None,
    dtype: Annotated[str, typer.Option(help="auto (bf16 where the CPU supports it), float32, bfloat16.")] = "auto",
) -> None:
    """Save a trained adapter merged into its base model's weights, as a model folder any tool loads.

    Example: refute train merge --adapter adapters/fix1 --out models/fixed

    Then: refute run --model hf:models/fixed ...
    """
    written = merge_adapter(adapter, out_dir, base=base, dtype=dtype)
    out.print(f"wrote {escape(str(written))}; use it as: --model hf:{escape(str(written))}", highlight=False,
              soft_wrap=True)
