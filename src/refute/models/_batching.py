"""Continuous batching for local causal LMs: a slot freed by a finished reply is refilled at once.

A `ContinuousBatcher` keeps up to ``slots`` rows decoding together over one KV cache. Rows are
right-aligned: each row's newest token sits in the last column and a shorter row is padded on the
left (masked out), so one decode step feeds every row one token whatever its length. A row that
ends (end-of-sequence, its token limit or a stop string) leaves the batch at once and its slot goes
to the next waiting request, instead of idling until the batch's longest reply is done.

Prefill is shared. Requests with identical token ids (the epochs of one prompt) are prefilled
once and each of their rows copies that prompt's KV. The longest token prefix that every prompt of
a call shares (a chat template's opening, a system prompt) is prefilled once and each prompt's
prefill starts from it; prompts admitted together that share still more (a transform's template)
prefill that part once too.

Sampling is reproducible per request whatever the batch: `sample_next` draws one uniform number
per token from the row's own generator, seeded with the request's seed, and inverts the CDF of
softmax(logits / T) after top-p. Greedy rows take the arg-max.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from refute.models._base import Completion, GenerateConfig, GenerateRequest, cut_at_stop

if TYPE_CHECKING:
    import torch

__all__ = ["ContinuousBatcher", "sample_next", "supports_continuous_batching"]

#: A shared prefix shorter than this is not worth a separate prefill.
MIN_SHARED_PREFIX = 8


def supports_continuous_batching(model: Any) -> bool:
    """True for decoder-only models whose every layer keeps a plain, growing KV cache.

    Sliding-window and recurrent layers keep other state, which the scheduler's row surgery
    (insert, drop, re-align) would corrupt; those models use whole-batch ``generate``.
    """
    config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
    if getattr(config, "is_encoder_decoder", False):
        return False
    # Qwen2 carries a sliding_window it does not use (use_sliding_window false); Mistral v0.1 and
    # Phi-3 use theirs without that switch
    sliding = getattr(config, "use_sliding_window", getattr(config, "sliding_window", None) is not None)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"]
    params = inspect.signature(model.forward).parameters
    takes = "position_ids" in params and ("cache" in params or "past_key_values" in params)
    return takes and not sliding and all(t == "full_attention" for t in layer_types)


def sample_next(logits: torch.Tensor, configs: Sequence[GenerateConfig],
                generators: Sequence[torch.Generator | None]) -> list[int]:
    """The next token of each row: arg-max when its temperature is 0, else one seeded draw.

    ``logits`` is (rows, vocab). A sampled row keeps the tokens whose preceding cumulative
    probability is below its top-p (the first token always) and draws by inverting the CDF with
    one uniform number from its generator, so a row's draw depends on its own seed and logits only.
    """
    import torch

    logits = logits.float()
    chosen = logits.argmax(dim=-1).tolist()
    sampled = [i for i, c in enumerate(configs) if c.temperature > 0]
    if not sampled:
        return chosen
    rows = torch.tensor(sampled)
    temps = torch.tensor([configs[i].temperature for i in sampled])[:, None]
    probs = (logits[rows] / temps).softmax(dim=-1)  # (S, V)
    top_p = torch.tensor([configs[i].top_p for i in sampled])
    if bool((top_p < 1.0).any()):
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs
        sorted_probs = sorted_probs.masked_fill(before >= top_p[:, None], 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    cdf = probs.cumsum(dim=-1)
    # 1 - U lies in (0, 1]: a draw of exactly 0 would pick token 0 whatever its probability
    uniform = 1.0 - torch.stack([torch.rand((), generator=generators[i]) for i in sampled])
    picks = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None]).clamp(max=probs.shape[-1] - 1)
    for row, pick in zip(sampled, picks[:, 0].tolist(), strict=True):
        chosen[row] = pick
    return chosen


@dataclass
class _Prefilled:
    """One prompt after prefill: its KV (one row, every column valid) and its last logits."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (1, heads, length, dim) keys, values
    logits: torch.Tensor  # (vocab,)
    length: int


@dataclass
class _Row:
    """One reply being decoded."""

    index: int
    config: GenerateConfig
    generator: torch.Generator | None
    input_tokens: int
    started: float
    tokens: list[int] = field(default_factory=list)  # generated so far; the last is not yet in the cache
    cached: int = 0  # tokens of this row in the KV cache: its position for the next token


@dataclass
class _Batch:
    """What one `ContinuousBatcher.run` carries from step to step."""

    waiting: deque[tuple[tuple[int, ...], list[int]]]  # prompt ids -> requests not yet admitted
    mask: torch.Tensor  # (rows, columns): 1 where a row has a token in the cache
    rows: list[_Row] = field(default_factory=list)
    cache: Any = None
    prefix: _Prefilled | None = None
    prefilled: dict[tuple[int, ...], _Prefilled] = field(default_factory=dict)


class ContinuousBatcher:
    """Decode many requests through ``slots`` rows of one KV cache; see the module docstring."""

    def __init__(self, model: Any, tokenizer: Any, eos_ids: Sequence[int], *, slots: int,
                 device: str = "cpu", refill_at: int | None = None) -> None:
        self.model, self.tokenizer, self.eos_ids = model, tokenizer, set(eos_ids)
        self.slots = max(1, int(slots))
        self.device = device
        #: admit waiting requests once this many slots are free (or the batch is empty), so a
        #: prefill serves several new rows instead of interrupting decoding for each one.
        self.refill_at = refill_at or max(1, self.slots // 8)
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, ids: Sequence[Sequence[int]], requests: Sequence[GenerateRequest]
            ) -> Iterator[tuple[int, Completion]]:
        """Yield ``(index, completion)`` for every request, each as soon as its reply ends.

        Model work runs in inference mode; the caller's code between yields does not."""
        import torch

        groups: dict[tuple[int, ...], list[int]] = {}
        for i, prompt_ids in enumerate(ids):
            groups.setdefault(tuple(prompt_ids), []).append(i)
        batch = _Batch(waiting=deque(sorted(groups.items(), key=lambda item: len(item[0]))),
                       mask=torch.zeros(0, 0, dtype=torch.long))
        with torch.inference_mode():
            batch.prefix = self._shared_prefix(list(groups), None)
        while batch.waiting or batch.rows:
            with torch.inference_mode():
                finished = self._step(batch, requests)
            yield from finished

    def _step(self, batch: _Batch, requests: Sequence[GenerateRequest]) -> list[tuple[int, Completion]]:
        """Admit waiting requests if enough slots are free, then decode one token for every row."""
        import torch

        finished: list[tuple[int, Completion]] = []
        free = self.slots - len(batch.rows)
        waiting = sum(len(indices) for _, indices in batch.waiting)
        if waiting and (not batch.rows or free >= min(self.refill_at, waiting)):
            fresh, fresh_kv = [], []
            for row, state in self._admit(batch.waiting, free, batch.prefilled, batch.prefix, requests):
                row.tokens.append(sample_next(state.logits[None, :], [row.config], [row.generator])[0])
                row.cached = state.length
                if self._finished(row):
                    finished.append((row.index, self._completion(row)))
                else:
                    fresh.append(row)
                    fresh_kv.append(state.kv)
            if fresh:
                batch.cache, batch.mask = self._merge(batch.cache, batch.mask, fresh_kv)
                batch.rows.extend(fresh)
        if not batch.rows:
            return finished
        batch.mask = torch.cat([batch.mask, torch.ones(len(batch.rows), 1, dtype=batch.mask.dtype)], dim=1)
        logits = self._decode(batch.cache, batch.mask, batch.rows)
        picks = sample_next(logits, [r.config for r in batch.rows], [r.generator for r in batch.rows])
        keep = []
        for j, (row, token) in enumerate(zip(batch.rows, picks, strict=True)):
            row.cached += 1
            row.tokens.append(token)
            if self._finished(row):
                finished.append((row.index, self._completion(row)))
            else:
                keep.append(j)
        if len(keep) < len(batch.rows):
            batch.rows = [batch.rows[j] for j in keep]
            batch.cache, batch.mask = _select_rows(batch.cache, batch.mask, keep)
        return finished

    def _admit(self, waiting: deque[tuple[tuple[int, ...], list[int]]], free: int,
               prefilled: dict[tuple[int, ...], _Prefilled], prefix: _Prefilled | None,
               requests: Sequence[GenerateRequest]) -> list[tuple[_Row, _Prefilled]]:
        """Take up to ``free`` waiting requests, prefilling each new prompt once."""
        import torch

        taken: list[tuple[tuple[int, ...], int]] = []
        while waiting and len(taken) < free:
            prompt, indices = waiting[0]
            n = min(free - len(taken), len(indices))
            taken.extend((prompt, i) for i in indices[:n])
            del indices[:n]
            if not indices:
                waiting.popleft()
        new = list(dict.fromkeys(p for p, _ in taken if p not in prefilled))
        for start in range(0, len(new), self.slots):
            chunk = new[start : start + self.slots]
            prefilled.update(zip(chunk, self._prefill(chunk, prefix), strict=True))
        now = time.perf_counter()
        out = []
        for prompt, i in taken:
            request = requests[i]
            generator = (torch.Generator().manual_seed(int(request.seed))
                         if request.config.temperature > 0 else None)
            out.append((_Row(i, request.config, generator, len(prompt), now), prefilled[prompt]))
        still_waiting = {p for p, _ in waiting}
        for prompt in [p for p in prefilled if p not in still_waiting]:
            del prefilled[prompt]  # every epoch of it has a row now
        return out

    # -- model calls ------------------------------------------------------------------------------

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                 cache: Any) -> Any:
        return self.model(input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device),
                          position_ids=position_ids.to(self.device), use_cache=True, logits_to_keep=1,
                          **{self._cache_arg: cache})

    def _shared_prefix(self, prompts: list[tuple[int, ...]], base: _Prefilled | None) -> _Prefilled | None:
        """``base`` extended by the tokens every prompt shares after it, prefilled once if that is
        worth a pass (each prompt keeps at least one token of its own)."""
        start = base.length if base is not None else 0
        if len(prompts) < 2:
            return base
        first, length = prompts[0], min(len(p) for p in prompts) - 1
        for p in prompts[1:]:
            length = next((k for k in range(start, length) if p[k] != first[k]), length)
        if length - start < MIN_SHARED_PREFIX:
            return base
        return self._prefill([first[:length]], base)[0]

    def _prefill(self, prompts: list[tuple[int, ...]], prefix: _Prefilled | None) -> list[_Prefilled]:
        """One forward pass over the prompts' suffixes (after ``prefix``), left-padded together.

        Prompts that share more than ``prefix`` (a template of their own) prefill that part once first.
        """
        import torch
        from transformers import DynamicCache

        prefix = self._shared_prefix(prompts, prefix)
        start = prefix.length if prefix is not None else 0
        suffixes = [p[start:] for p in prompts]
        width = max(len(s) for s in suffixes)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        suffix_mask = torch.zeros(len(prompts), width, dtype=torch.long)
        for j, s in enumerate(suffixes):
            input_ids[j, width - len(s):] = torch.tensor(s, dtype=torch.long)
            suffix_mask[j, width - len(s):] = 1
        positions = (start + suffix_mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache()
        if prefix is not None:
            for layer, (k, v) in enumerate(prefix.kv):
                cache.update(k.expand(len(prompts), -1, -1, -1), v.expand(len(prompts), -1, -1, -1), layer)
        mask = torch.cat([torch.ones(len(prompts), start, dtype=torch.long), suffix_mask], dim=1)
        out = self._forward(input_ids, mask, positions, cache)
        logits = out.logits[:, -1, :].float().cpu()
        layers = _cache_layers(cache)  # updated in place by the forward pass
        results = []
        for j, s in enumerate(suffixes):  # keep each row's valid columns only: prefix, then its suffix
            cols = torch.cat([torch.arange(start), torch.arange(start + width - len(s), start + width)])
            cols = cols.to(layers[0][0].device)
            kv = [(k[j : j + 1, :, cols], v[j : j + 1, :, cols]) for k, v in layers]
            results.append(_Prefilled(kv, logits[j], start + len(s)))
        return results

    def _decode(self, cache: Any, mask: torch.Tensor, rows: list[_Row]) -> torch.Tensor:
        """One step: every row's pending token in (``mask`` already has its column), every row's
        next-token logits out."""
        import torch

        input_ids = torch.tensor([[r.tokens[-1]] for r in rows], dtype=torch.long)
        positions = torch.tensor([[r.cached] for r in rows], dtype=torch.long)
        return cast("torch.Tensor", self._forward(input_ids, mask, positions, cache).logits[:, -1, :]).float().cpu()

    # -- rows -------------------------------------------------------------------------------------

    def _finished(self, row: _Row) -> bool:
        if row.tokens[-1] in self.eos_ids or len(row.tokens) >= row.config.max_tokens:
            return True
        if row.config.stop:
            longest = max(len(s) for s in row.config.stop)
            tail = self.tokenizer.decode(row.tokens[-(longest + 4):], skip_special_tokens=True)
            return any(s and s in tail for s in row.config.stop)
        return False

    def _completion(self, row: _Row) -> Completion:
        tokens, finish = row.tokens, "length"
        if tokens[-1] in self.eos_ids:
            finish = "stop"
        text = cast(str, self.tokenizer.decode(tokens, skip_special_tokens=True))
        n_out = len(tokens)
        if row.config.stop and any(s in text for s in row.config.stop):
            # the last token completed the stop string: every generated token counts, even when
            # the text is cut inside it (re-encoding the cut text can count more)
            text, finish = cut_at_stop(text, row.config.stop), "stop"
        return Completion(text=text, input_tokens=row.input_tokens, output_tokens=n_out,
                          latency_s=time.perf_counter() - row.started, finish_reason=finish)

    @staticmethod
    def _merge(cache: Any, mask: torch.Tensor, new: list[list[tuple[torch.Tensor, torch.Tensor]]]
               ) -> tuple[Any, torch.Tensor]:
        """Append new rows (each one row of KV, all valid) to the batch, right-aligned."""
        import torch
        from transformers import DynamicCache

        old = _cache_layers(cache) if cache is not None else None
        n_old, width_old = mask.shape
        width = max([width_old] + [kv[0][0].shape[2] for kv in new])
        rows = n_old + len(new)
        full_mask = torch.zeros(rows, width, dtype=torch.long)
        full_mask[:n_old, width - width_old:] = mask
        for j, kv in enumerate(new):
            full_mask[n_old + j, width - kv[0][0].shape[2]:] = 1
        merged = DynamicCache() if cache is None else cache
        for layer, (k_ref, _) in enumerate(new[0]):
            parts = []
            for which in (0, 1):
                shape = (rows, k_ref.shape[1], width, k_ref.shape[3])
                block = k_ref.new_zeros(shape)
                if old is not None:
                    block[:n_old, :, width - width_old:] = old[layer][which]
                for j, kv in enumerate(new):
                    t = kv[layer][which]
                    block[n_old + j, :, width - t.shape[2]:] = t[0]
                parts.append(block)
            _set_layer(merged, layer, parts[0], parts[1])
        return merged, full_mask


def _cache_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _set_layer(cache: Any, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
    if layer < len(cache.layers) and cache.layers[layer].is_initialized:
        cache.layers[layer].keys, cache.layers[layer].values = keys, values
    else:
        cache.update(keys, values, layer)


def _select_rows(cache: Any, mask: torch.Tensor, keep: list[int]) -> tuple[Any, torch.Tensor]:
    """Keep only rows ``keep``, then drop leading columns that no remaining row uses."""
    import torch

    index = torch.tensor(keep, dtype=torch.long)
    mask = mask[index]
    used = mask.any(dim=0).nonzero()
    first = int(used[0]) if len(used) else mask.shape[1]
    mask = mask[:, first:]
    for layer in cache.layers:
        layer.keys = layer.keys[index.to(layer.keys.device), :, first:]
        layer.values = layer.values[index.to(layer.values.device), :, first:]
    return cache, mask
