"""``vllm:<model>``: a hub id or local directory run in this process by vLLM (``vllm.LLM``) on CUDA GPUs.

vLLM batches continuously and pages its KV cache, so one GPU answers hundreds of sequences at
once; this backend hands it every request the engine gives (`preferred_batch_size` of them) in one
``LLM.generate`` call and yields the replies when that call returns. Prompts are rendered and
tokenised exactly as the ``hf`` backend does (`refute.models.render` and `encode_texts`: the
model's chat template, or a plain transcript for base models) and given to vLLM as token ids, so
``hf:X`` and ``vllm:X`` see the same tokens.

Each request gets its own ``SamplingParams`` with its own ``seed``, so a sampled reply does not
depend on which other requests share the batch (vLLM's per-request generator), and stop strings
stay in the reply as the other backends keep them. vLLM's sampler is not the ``hf`` backend's
(`refute.models._hf.SAMPLER`), so sampled replies differ between the two; greedy ones match up to
kernel rounding.

It needs ``pip install vllm`` and a CUDA GPU in this process. Without them, run ``vllm serve``
on a GPU machine and use ``openai:<model> --base-url http://HOST:8000/v1`` instead (docs/scale.md).
"""

from __future__ import annotations

import gc
import importlib.util
import time
from collections.abc import Iterator, Sequence
from typing import Any

from refute.errors import ConfigError, ModelError
from refute.models._base import Completion, GenerateRequest, ModelInfo
from refute.models._encode import encode_texts, render

__all__ = ["VLLMBackend", "check_vllm", "sampling_params"]

#: dtype names refute takes -> vLLM's
_DTYPES = {"auto": "auto", "float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}
#: sequences vLLM decodes together unless ``batch_size`` says otherwise (vLLM's own default)
DEFAULT_MAX_NUM_SEQS = 256


def _vllm_importable() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _cuda_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def check_vllm(model: str) -> None:
    """Raise a `ConfigError` saying what is missing (vllm, a CUDA GPU, or both) and what to do instead."""
    importable, gpu = _vllm_importable(), _cuda_gpu()
    if importable and gpu:
        return
    missing = []
    if not importable:
        missing.append("the vllm package is not installed")
    if not gpu:
        missing.append("no CUDA GPU is visible to this process (torch.cuda.is_available() is False)")
    have = ("vllm is installed" if importable else "a CUDA GPU is present") if importable != gpu else ""
    raise ConfigError(
        f"model spec 'vllm:{model}' runs vLLM in this process, but {' and '.join(missing)}"
        + (f" ({have})" if have else "")
        + ". On a machine with a CUDA GPU: pip install vllm. Or serve the model with vLLM elsewhere "
        f"(vllm serve {model} --port 8000) and use -m openai:{model} --base-url http://HOST:8000/v1; "
        "see docs/scale.md"
    )


def sampling_params(vllm: Any, request: GenerateRequest) -> Any:
    """The ``vllm.SamplingParams`` of one request: its settings and its own seed; stops kept in the reply."""
    config = request.config
    return vllm.SamplingParams(
        n=1,
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        seed=request.seed,
        stop=list(config.stop) or None,
        include_stop_str_in_output=True,
    )


class VLLMBackend:
    """A local model in vLLM's offline engine. ``llm`` (an object with ``generate`` and
    ``get_tokenizer``) replaces the engine this would build, for tests."""

    def __init__(self, model: str, *, dtype: str = "auto", max_num_seqs: int | None = None,
                 engine_args: dict[str, Any] | None = None, llm: Any = None) -> None:
        if dtype not in _DTYPES:
            raise ConfigError(f"vllm:{model}: unknown dtype '{dtype}'; use auto, float32, bfloat16 or float16")
        if max_num_seqs is not None and max_num_seqs < 1:
            raise ConfigError(f"vllm:{model}: max_num_seqs must be >= 1, got {max_num_seqs}")
        seqs = max_num_seqs or DEFAULT_MAX_NUM_SEQS
        if llm is None:
            check_vllm(model)
        import vllm  # a missing package was reported above, with what to do

        self._vllm = vllm
        if llm is None:
            try:
                llm = vllm.LLM(model=model, dtype=_DTYPES[dtype], max_num_seqs=seqs, **(engine_args or {}))
            except Exception as exc:  # vLLM raises many kinds; the cause is kept
                raise ModelError(f"vllm:{model}: vLLM could not load the model: {type(exc).__name__}: {exc}. "
                                 "Check the repo id or directory, and that the GPU has memory free "
                                 "(engine_args={'gpu_memory_utilization': ...} sets vLLM's share)") from exc
        self._llm = llm
        self.tokenizer = llm.get_tokenizer()
        #: every request the engine hands over goes to vLLM in one call; it schedules them itself
        self.preferred_batch_size = seqs * 4
        version = str(getattr(vllm, "__version__", "unknown"))
        self.info = ModelInfo(spec=f"vllm:{model}", backend="vllm", revision=None,
                              details={"dtype": _DTYPES[dtype], "max_num_seqs": seqs, "vllm": version,
                                       "engine_args": dict(engine_args or {})})

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        """Generate every request in one vLLM call; if it fails, each request alone, so one bad
        request (a prompt longer than the model's context) fails only itself."""
        requests = list(requests)
        if not requests:
            return
        if self._llm is None:
            raise ModelError(f"{self.info.spec}: the backend is closed; load the model again")
        ids = encode_texts(self.tokenizer, [render(self.tokenizer, r.messages) for r in requests])
        prompts = [{"prompt_token_ids": row} for row in ids]
        params = [sampling_params(self._vllm, r) for r in requests]
        start = time.perf_counter()
        try:
            outputs = self._llm.generate(prompts, params, use_tqdm=False)
        except Exception:  # noqa: BLE001 - retried one by one below, each failure recorded
            for i in range(len(requests)):
                one = time.perf_counter()
                try:
                    (output,) = self._llm.generate([prompts[i]], [params[i]], use_tqdm=False)
                except Exception as exc:  # noqa: BLE001 - one failed request is recorded, not raised
                    yield i, Completion(text="", error=f"{self.info.spec}: {type(exc).__name__}: {exc}")
                    continue
                yield i, _completion(output, time.perf_counter() - one)
            return
        elapsed = time.perf_counter() - start
        for i, output in enumerate(outputs):
            yield i, _completion(output, elapsed)

    def close(self) -> None:
        """Drop the engine and return its GPU memory."""
        self._llm = None
        gc.collect()
        try:
            import torch
        except ImportError:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _completion(output: Any, elapsed: float) -> Completion:
    """A ``vllm.RequestOutput`` as a Completion; latency from vLLM's metrics when it keeps them,
    else the wall time of the call that produced it."""
    best = output.outputs[0]
    metrics = getattr(output, "metrics", None)
    arrival, finished = getattr(metrics, "arrival_time", None), getattr(metrics, "finished_time", None)
    latency = finished - arrival if isinstance(arrival, float) and isinstance(finished, float) else elapsed
    return Completion(text=best.text, input_tokens=len(output.prompt_token_ids or ()),
                      output_tokens=len(best.token_ids or ()), latency_s=latency,
                      finish_reason=best.finish_reason if isinstance(best.finish_reason, str) else None)
