"""`refute.interp.capture` stops the forward pass after its deepest site, without changing numbers.

On the tiny random 2-layer Qwen2 model: forward hooks count the calls of each decoder layer, the
final norm and ``lm_head`` while `capture` runs, and the captured values are checked against a
plain full forward of each prompt alone (no padding).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from refute.interp import capture, find_layers, render_prompts  # noqa: E402 - after importorskip
from refute.interp._capture import encode_batch  # noqa: E402

PROMPTS = ["How do I bake bread?", "What is the capital of France?", "Tell me a joke about dogs.",
           "The quick brown fox", "Explain 2 + 2."]
POSITIONS = (0, 1, -2, -1)
BATCH = 2  # 5 prompts: batches of 2, 2 and 1


@contextmanager
def _calls(model: Any) -> Iterator[Counter[str]]:
    """Completed forward calls of each decoder layer (``layer.L``), the final norm and ``lm_head``."""
    modules = {f"layer.{i}": layer for i, layer in enumerate(find_layers(model))}
    modules["norm"] = model.model.norm
    modules["lm_head"] = model.get_output_embeddings()
    counts: Counter[str] = Counter()

    def counter(name: str) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            counts[name] += 1

        return hook

    handles = [m.register_forward_hook(counter(name)) for name, m in modules.items()]
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def _texts(backend: Any) -> list[str]:
    return render_prompts(backend.tokenizer, PROMPTS)


def _capture_counted(backend: Any, sites: list[str]) -> tuple[Any, Counter[str]]:
    with _calls(backend.model) as counts:
        acts = capture(backend.model, backend.tokenizer, _texts(backend), sites, positions=POSITIONS,
                       batch_size=BATCH)
    return acts, counts


@pytest.mark.parametrize("site", ["resid_post.0", "resid_pre.1", "mlp_out.0"])
def test_an_early_site_never_runs_later_layers_or_logits(tiny_backend, site: str):
    _, counts = _capture_counted(tiny_backend, [site])
    assert counts["layer.1"] == 0, counts
    assert counts["norm"] == 0, counts
    assert counts["lm_head"] == 0, counts


def test_resid_post_0_runs_layer_0_once_per_batch(tiny_backend):
    _, counts = _capture_counted(tiny_backend, ["resid_post.0"])
    assert counts == Counter({"layer.0": 3}), counts


def test_the_last_layer_runs_every_layer_but_no_logits(tiny_backend):
    _, counts = _capture_counted(tiny_backend, ["resid_post.0", "resid_post.1"])
    assert counts == Counter({"layer.0": 3, "layer.1": 3}), counts


def test_a_plain_forward_is_counted_in_full(tiny_backend):
    """The counters themselves see a whole forward pass (so a zero above means 'not run')."""
    enc = encode_batch(tiny_backend.tokenizer, _texts(tiny_backend))
    with _calls(tiny_backend.model) as counts, torch.inference_mode():
        tiny_backend.model(**enc, use_cache=False)
    assert counts == Counter({"layer.0": 1, "layer.1": 1, "norm": 1, "lm_head": 1}), counts


def _reference(backend: Any, text: str) -> dict[str, Any]:
    """Each site at ``POSITIONS`` from a full forward of ``text`` alone, with hidden states."""
    model = backend.model
    last: dict[str, Any] = {}
    handle = find_layers(model)[-1].register_forward_hook(
        lambda module, args, output: last.update(out=output[0] if isinstance(output, tuple) else output))
    try:
        with torch.inference_mode():
            hs = model(**encode_batch(backend.tokenizer, [text]), output_hidden_states=True,
                       use_cache=False).hidden_states
    finally:
        handle.remove()
    cols = list(POSITIONS)
    # hidden_states[L + 1] is what layer L leaves, except the last entry, which is after the
    # final norm: the last layer's own output comes from the hook.
    return {"resid_pre.0": hs[0][0, cols], "resid_post.0": hs[1][0, cols], "resid_pre.1": hs[1][0, cols],
            "resid_post.1": last["out"][0, cols]}


def test_stopping_early_does_not_change_the_numbers(tiny_backend):
    texts = _texts(tiny_backend)
    early = capture(tiny_backend.model, tiny_backend.tokenizer, texts, ["resid_post.0"], positions=POSITIONS,
                    batch_size=BATCH)
    full = capture(tiny_backend.model, tiny_backend.tokenizer, texts,
                   ["resid_pre.0", "resid_post.0", "resid_pre.1", "resid_post.1"], positions=POSITIONS,
                   batch_size=BATCH)
    torch.testing.assert_close(early["resid_post.0"], full["resid_post.0"], rtol=0, atol=0)
    for i, text in enumerate(texts):
        for site, expected in _reference(tiny_backend, text).items():
            torch.testing.assert_close(full[site][i], expected.float(), atol=1e-5, rtol=1e-5,
                                       msg=lambda m, site=site: f"{site}: {m}")
