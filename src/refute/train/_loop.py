"""The optimisation loop: seeded data order, gradient accumulation, the SFT or DPO step, and the checks
that stop a run that has gone wrong (a non-finite loss or gradient, out of memory).

Data order: epoch ``e`` visits the rows in ``randperm(n)`` drawn from a generator seeded with
``derive_seed(seed, "train-order", e)``, ``batch_size`` at a time (the last batch of an epoch may
be smaller); an optimizer step takes the next ``grad_accum`` batches, across epochs if need be. The
position in that stream (epoch, batch) is all a resumed run needs to carry on with the same rows.

An optimizer step's loss is normalised over the whole step (all its completion tokens for SFT, all
its pairs for DPO), so splitting a step into more, smaller batches does not change the gradient.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from refute._seeds import derive_seed
from refute.errors import TrainingError
from refute.train._config import TrainConfig
from refute.train._losses import dpo_loss, sequence_logprobs, sft_loss_sum
from refute.train._tokens import Batch, Example, collate

__all__ = ["LoopState", "StepLog", "batches_per_epoch", "run_steps", "total_steps"]

_MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


@dataclass
class LoopState:
    """Where training stands: saved in every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # data position: the epoch and the batch within it that come next
    batch: int = 0
    tokens: int = 0
    completion_tokens: int = 0
    first_loss: float | None = None
    last_loss: float | None = None
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class StepLog:
    """One optimizer step, as written to ``log.jsonl``."""

    step: int
    loss: float
    lr: float
    grad_norm: float
    tokens: int
    completion_tokens: int
    seconds: float
    tokens_per_s: float


def batches_per_epoch(n_rows: int, batch_size: int) -> int:
    return math.ceil(n_rows / batch_size)


def total_steps(config: TrainConfig, n_rows: int) -> int:
    """``config.steps``, or enough steps for ``config.epochs`` passes over the rows."""
    if config.steps is not None:
        return config.steps
    return math.ceil(config.epochs * batches_per_epoch(n_rows, config.batch_size) / config.grad_accum)


class _Order:
    """The seeded stream of batches (row indices), from a saved position."""

    def __init__(self, n_rows: int, batch_size: int, seed: int) -> None:
        self.n, self.size, self.seed = n_rows, batch_size, seed
        self._epoch, self._perm = -1, [0]

    def take(self, state: LoopState) -> list[int]:
        import torch

        if state.epoch != self._epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, "train-order", state.epoch))
            self._epoch, self._perm = state.epoch, torch.randperm(self.n, generator=generator).tolist()
        rows = self._perm[state.batch * self.size : (state.batch + 1) * self.size]
        state.batch += 1
        if state.batch == batches_per_epoch(self.n, self.size):
            state.epoch, state.batch = state.epoch + 1, 0
        return rows


def _sft_batch(model: Any, examples: list[Example], pad_id: int, device: Any) -> tuple[Batch, Any]:
    batch = collate([(ex.prompt, ex.completions[0]) for ex in examples], pad_id).to(device)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
    return batch, sft_loss_sum(logits, batch.labels)


def _dpo_batch(model: Any, examples: list[Example], pad_id: int, beta: float, device: Any) -> tuple[Batch, Any]:
    import torch

    k = len(examples)  # sequences: the k chosen, then the k rejected
    batch = collate([(ex.prompt, ex.completions[0]) for ex in examples]
                    + [(ex.prompt, ex.completions[1]) for ex in examples], pad_id).to(device)
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask, "use_cache": False}
    policy = sequence_logprobs(model(**inputs).logits, batch.labels)  # (2k,)
    with model.disable_adapter(), torch.no_grad():  # the reference: the same weights without the adapter
        reference = sequence_logprobs(model(**inputs).logits, batch.labels)
    return batch, dpo_loss(policy[:k], policy[k:], reference[:k], reference[k:], beta).sum()


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
        isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _MEMORY_WORDS))


def run_steps(model: Any, examples: list[Example], ids: list[str], config: TrainConfig, state: LoopState, *,
              total: int, optimizer: Any, scheduler: Any, pad_id: int,
              checkpoint: Callable[[LoopState], None], last_checkpoint: Callable[[], str],
              on_step: Callable[[StepLog], None]) -> None:
    """Run optimizer steps from ``state.step`` to ``total``; ``checkpoint(state)`` every
    ``config.save_every`` steps. A `TrainingError` says why a run stopped and which checkpoint it kept."""
    import torch

    order = _Order(len(examples), config.batch_size, config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    device = next(model.parameters()).device
    model.train()
    while state.step < total:
        started = time.perf_counter()
        micro = [order.take(state) for _ in range(config.grad_accum)]
        # the step's completion tokens (SFT) or pairs (DPO): each batch's summed loss is divided by it
        denominator = sum(len(examples[i].completions[0]) for rows in micro for i in rows) \
            if config.method == "sft" else sum(len(rows) for rows in micro)
        optimizer.zero_grad(set_to_none=True)
        loss_total, tokens, completion_tokens = 0.0, 0, 0
        for rows in micro:
            chosen = [examples[i] for i in rows]
            try:
                if config.method == "sft":
                    batch, summed = _sft_batch(model, chosen, pad_id, device)
                else:
                    batch, summed = _dpo_batch(model, chosen, pad_id, config.beta, device)
                loss = summed / denominator
                finite = bool(torch.isfinite(loss))
                if finite:
                    loss.backward()
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc):
                    raise
                raise TrainingError(
                    f"out of memory at step {state.step + 1} ({exc}); lower --batch-size (now {config.batch_size}) "
                    f"or --max-length (now {config.max_length}), and raise --grad-accum to keep the rows per "
                    f"step. {last_checkpoint()}") from exc
            if not finite:
                raise _non_finite(f"the loss is {loss.item()}", state.step + 1, [ids[i] for i in rows], config,
                                  last_checkpoint())
            loss_total += float(loss.item())
            tokens, completion_tokens = tokens + batch.tokens, completion_tokens + batch.completion_tokens
        norm = float(torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm))
        if not math.isfinite(norm):
            raise _non_finite(f"the gradient norm is {norm}", state.step + 1,
                              [ids[i] for rows in micro for i in rows], config, last_checkpoint())
        lr = float(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
        seconds = time.perf_counter() - started
        state.step += 1
        state.tokens += tokens
        state.completion_tokens += completion_tokens
        state.first_loss = loss_total if state.first_loss is None else state.first_loss
        state.last_loss = loss_total
        state.wall_s += seconds
        on_step(StepLog(state.step, loss_total, lr, norm, tokens, completion_tokens, seconds,
                        tokens / seconds if seconds > 0 else 0.0))
        if state.step % config.save_every == 0 and state.step < total:
            checkpoint(state)


def _non_finite(what: str, step: int, rows: list[str], config: TrainConfig, kept: str) -> TrainingError:
    shown = ", ".join(rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    return TrainingError(f"{what} at step {step} (rows {shown}); training stopped. Lower --lr (now {config.lr:g}) "
                         f"or look at these rows. {kept}")
