"""Hugging Face transformers backend: chat-templated generation, continuously batched.

Models with a plain KV cache (most decoder-only LMs) decode through `ContinuousBatcher`: a
finished reply's slot is refilled at once, epochs of one prompt are prefilled once, and a prefix
every prompt shares is prefilled once. Others (sliding-window or recurrent layers) use
``generate`` on left-padded batches of similar length. Either way sampling is reproducible per
request and independent of batch composition: each row draws from a generator seeded with the
request's seed (`refute.models._batching.sample_next`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from refute.errors import ConfigError, ModelError, ModelNotInstalledError
from refute.models._base import Completion, GenerateConfig, GenerateRequest, Message, ModelInfo, cut_at_stop
from refute.models._batching import ContinuousBatcher, sample_next, supports_continuous_batching
from refute.models._encode import encode_texts, has_chat_template, render

if TYPE_CHECKING:
    import torch

__all__ = ["HFBackend", "cpu_supports_bf16", "render_prompt"]

#: how sampled tokens are drawn (recorded with the model, so cached replies of another sampler
#: are not reused): one seeded uniform per token, inverting the CDF (see `sample_next`).
SAMPLER = "inverse-cdf-1"
#: requests the engine hands over per slot when the batch refills itself
_QUEUE_PER_SLOT = 8


def cpu_supports_bf16() -> bool:
    """True on CPUs with native bf16 arithmetic (AVX-512 BF16 or AMX), where bf16 is ~2x fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _pick_dtype(dtype: str, device: str) -> torch.dtype:
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_supports_bf16() else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ModelError(f"unknown dtype '{dtype}'; use auto, float32, bfloat16 or float16")
    return table[dtype]


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The text a causal LM sees: `refute.models.render` (chat template, or a plain transcript)."""
    return render(tokenizer, messages)


class _SeededSampler:
    """A logits processor that makes greedy ``generate`` pick `sample_next`'s seeded draw per row."""

    def __init__(self, requests: Sequence[GenerateRequest]) -> None:
        import torch

        self.configs = [r.config for r in requests]
        self.generators = [torch.Generator().manual_seed(int(r.seed)) for r in requests]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        picks = torch.tensor(sample_next(scores.float().cpu(), self.configs, self.generators), device=scores.device)
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter(-1, picks[:, None], 0.0)


class HFBackend:
    """A local causal LM through transformers."""

    def __init__(
        self,
        path_or_repo: str | Path,
        *,
        spec: str | None = None,
        dtype: str = "auto",
        device: str = "cpu",
        batch_size: int = 32,
        continuous: bool = True,
        revision: str | None = None,
        recorded_revision: str | None = None,
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise ModelNotInstalledError(
                "local models need torch and transformers: pip install 'refute[local]'"
            ) from exc
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bars go to stderr; theirs add noise
        self.device = device
        self.torch_dtype = _pick_dtype(dtype, device) if model is None else next(model.parameters()).dtype
        source = str(path_or_repo)
        try:
            self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(source, revision=revision)
            self.model = model or AutoModelForCausalLM.from_pretrained(
                source, dtype=self.torch_dtype, revision=revision
            )
        except (OSError, ValueError, KeyError) as exc:  # ValueError: a directory that is no model
            error = ConfigError if Path(source).expanduser().is_dir() else ModelError  # bad input
            raise error(
                f"could not load '{source}' with transformers: {exc}. A local directory needs "
                "config.json, weights and tokenizer files; a hub id needs network access "
                "(or a populated Hugging Face cache)."
            ) from exc
        # transformers wraps PreTrainedModel.to in functools.wraps, which mypy reads as unbound
        self.model.to(device).eval()  # type: ignore[arg-type]
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        #: rows decoded together; the engine hands over a longer queue when the batch refills itself
        self.batch_size = max(1, int(batch_size))
        self.continuous = continuous and supports_continuous_batching(self.model)
        self.preferred_batch_size = self.batch_size * (_QUEUE_PER_SLOT if self.continuous else 1)
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(self.tokenizer.eos_token_id)
        self.eos_ids: list[int] = eos_ids
        # What the run records: a content hash for embedded/GGUF models, else the hub commit.
        rev = recorded_revision or revision or getattr(self.model.config, "_commit_hash", None)
        self.info = ModelInfo(
            spec=spec or f"hf:{source}",
            backend="hf",
            revision=rev,
            details={
                "source": source,
                "architecture": type(self.model).__name__,
                "dtype": str(self.torch_dtype).removeprefix("torch."),
                "device": device,
                "parameters": str(sum(p.numel() for p in self.model.parameters())),
                "chat_template": str(has_chat_template(self.tokenizer)),
                "sampler": SAMPLER,
            },
        )
        self._torch = torch

    # -- generation ---------------------------------------------------------------------------

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        """Generate every request; yields each result as soon as it is done."""
        # the one tokenisation (refute.models.encode): what capture, probes and GCG see too
        ids = encode_texts(self.tokenizer, [render(self.tokenizer, r.messages) for r in requests])
        if self.continuous:
            yield from self._generate_continuous(ids, requests)
        else:
            yield from self._generate_batches(ids, requests)

    def _generate_continuous(self, ids: list[list[int]], requests: Sequence[GenerateRequest]
                             ) -> Iterator[tuple[int, Completion]]:
        batcher = ContinuousBatcher(self.model, self.tokenizer, self.eos_ids, slots=self.batch_size,
                                    device=self.device)
        done: set[int] = set()
        try:
            for index, completion in batcher.run(ids, requests):
                done.add(index)
                yield index, completion
        except Exception as exc:  # noqa: BLE001 - the requests not yet answered are recorded as failed
            failed = Completion(text="", error=f"{type(exc).__name__}: {exc}")
            yield from ((i, failed) for i in range(len(requests)) if i not in done)

    def _generate_batches(self, ids: list[list[int]], requests: Sequence[GenerateRequest]
                          ) -> Iterator[tuple[int, Completion]]:
        """Whole-batch ``generate`` in batches of similar length; yields each batch as it finishes."""
        # Group by settings, then sort by length so a batch wastes little on padding.
        order = sorted(range(len(requests)), key=lambda i: (_config_key(requests[i].config), len(ids[i])))
        for _, same_config in groupby(order, key=lambda i: _config_key(requests[i].config)):
            indices = list(same_config)
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                try:
                    results = self._generate_batch([ids[i] for i in batch], [requests[i] for i in batch])
                except Exception as exc:  # noqa: BLE001 - one bad batch is recorded, not raised
                    results = [Completion(text="", error=f"{type(exc).__name__}: {exc}")] * len(batch)
                yield from zip(batch, results, strict=True)

    def _generate_batch(self, ids: list[list[int]], requests: list[GenerateRequest]) -> list[Completion]:
        torch = self._torch
        from transformers import GenerationConfig, LogitsProcessorList

        config = requests[0].config
        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")  # left-padded
        enc = {k: v.to(self.device) for k, v in enc.items()}
        gen_config = GenerationConfig(
            max_new_tokens=config.max_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids,
            stop_strings=list(config.stop) or None,
            # GenerateConfig is the whole recipe, as in the continuous path: a checkpoint's own
            # generation defaults (a repetition penalty, banned n-grams) are not applied
            repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0,
        )
        processors = LogitsProcessorList()
        if config.temperature > 0:
            processors.append(_SeededSampler(requests))
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**enc, generation_config=gen_config, logits_processor=processors,
                                      tokenizer=self.tokenizer if config.stop else None)
        elapsed = time.perf_counter() - start
        prompt_len = enc["input_ids"].shape[1]
        new_tokens = out[:, prompt_len:]  # (B, T_new)
        input_counts = enc["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, n_in in zip(new_tokens.tolist(), input_counts, strict=True):
            n_out, finish = len(row), "length"
            for pos, tok in enumerate(row):
                if tok in self.eos_ids:
                    n_out, finish = pos + 1, "stop"
                    break
            text = cast(str, self.tokenizer.decode(row[:n_out], skip_special_tokens=True))  # one sequence: a str
            if config.stop and any(s in text for s in config.stop):  # generation stopped at (or past) it
                cut = cut_at_stop(text, config.stop)
                if cut != text:
                    text, n_out = cut, len(self.tokenizer.encode(cut, add_special_tokens=False))
                finish = "stop"
            results.append(Completion(text=text, input_tokens=int(n_in), output_tokens=n_out,
                                      latency_s=elapsed, finish_reason=finish))
        return results

    def close(self) -> None:
        self.model = None


def _config_key(config: GenerateConfig) -> tuple[int, float, float, tuple[str, ...]]:
    return (config.max_tokens, config.temperature, config.top_p, config.stop)
