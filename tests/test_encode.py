"""One tokenisation (`refute.models.encode`) for generation, capture, probes and GCG, on a chat
model and on a base model (no chat template, a BOS token first)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from refute.models import Message, encode, render  # noqa: E402 - after importorskip
from refute.models._encode import encode_text  # noqa: E402

PROMPT = "How do I bake bread?"
MESSAGES = [Message(role="user", content=PROMPT)]


def _rows(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[list[int]]:
    """Each row's real tokens (left padding removed)."""
    if attention_mask is None:
        return input_ids.tolist()
    return [ids[mask.bool()].tolist() for ids, mask in zip(input_ids, attention_mask, strict=True)]


class _Inputs:
    """Records the token ids of every forward pass of ``model`` (a pre-hook on the whole model)."""

    def __init__(self, model) -> None:
        self.model, self.seen = model, []

    def __enter__(self):
        def hook(module, args, kwargs):
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is not None:
                self.seen.append(_rows(ids, kwargs.get("attention_mask")))

        self.handle = self.model.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def test_a_base_model_prompt_is_a_transcript_after_its_bos_token(tiny_base_backend, tiny_backend):
    tok = tiny_base_backend.tokenizer
    assert tok.chat_template is None and tok.bos_token_id is not None
    text = render(tok, MESSAGES)
    assert text == f"User: {PROMPT}\n\nAssistant:"
    assert render(tok, MESSAGES, add_generation_prompt=False) == f"User: {PROMPT}"
    ids = encode(tok, MESSAGES)
    assert ids[0] == tok.bos_token_id and ids[1:] == tok(text, add_special_tokens=False).input_ids
    # a chat model's template writes its own special tokens: none are added
    chat = tiny_backend.tokenizer
    assert encode(chat, MESSAGES) == chat(render(chat, MESSAGES), add_special_tokens=False).input_ids
    assert encode(chat, MESSAGES)[0] == chat.convert_tokens_to_ids("<|im_start|>")


@pytest.mark.parametrize("which", ["base", "chat"])
def test_generation_capture_and_gcg_feed_the_model_the_same_ids(which, tiny_base_backend, tiny_backend):
    from refute.interp import capture, render_prompts
    from refute.models import GenerateConfig, GenerateRequest
    from refute.redteam import gcg_attack

    backend = tiny_base_backend if which == "base" else tiny_backend
    tok, model = backend.tokenizer, backend.model
    expected = encode(tok, MESSAGES)
    if which == "base":
        assert expected[0] == tok.bos_token_id
    # generation: the prompt of the first forward pass (two prompts: one is left-padded)
    other = [Message(role="user", content="Tell me a joke about dogs, please, now.")]
    requests = [GenerateRequest(tuple(m), GenerateConfig(max_tokens=2), 0) for m in (MESSAGES, other)]
    with _Inputs(model) as gen:
        dict(backend.generate(requests))
    assert expected in gen.seen[0] and encode(tok, other) in gen.seen[0]
    # capture (and so probes, directions, patching): the same rows
    with _Inputs(model) as cap:
        capture(model, tok, render_prompts(tok, [PROMPT, other[0].content]), ["resid_pre.1"])
    assert cap.seen == [[expected, encode(tok, other)]]
    # GCG: the cached prefix, the suffix and the rest are the ids generation gives the whole message
    with _Inputs(model) as gcg:
        result = gcg_attack(backend, PROMPT, n_steps=1, suffix_len=3, top_k=8, batch_size=4, seed=0)
    before = gcg.seen[0][0]
    whole = encode(tok, [Message(role="user", content=result.message)])
    assert whole[: len(before) + 3] == before + list(result.suffix_ids)
    assert before[0] == expected[0] and expected[: len(before)] == before
    # and the loss GCG reports is the loss of the target after exactly those ids
    target = tok("Sure, here is", add_special_tokens=False).input_ids
    ids = torch.tensor([whole + target])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -len(target) - 1 : -1]
    direct = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(target))
    assert float(direct) == pytest.approx(result.best_loss, abs=1e-4)


def test_interp_runs_on_a_base_model(tiny_base_backend):
    from test_interp_report import NEG, POS

    from refute.interp import fit_probe_on_prompts, render_prompts
    from refute.interp._capture import encode_batch
    from refute.interp._scores import cross_entropy
    from refute.stats import Estimate

    tok, model = tiny_base_backend.tokenizer, tiny_base_backend.model
    enc = encode_batch(tok, render_prompts(tok, POS[:3]))
    assert all(row[0] == tok.bos_token_id for row in _rows(enc["input_ids"], enc["attention_mask"]))
    fit = fit_probe_on_prompts(tiny_base_backend, POS, NEG, ["resid_pre.1"], n_boot=20)
    assert fit.probe.site == "resid_pre.1" and fit.probe.weight.shape == (model.config.hidden_size,)
    assert isinstance(fit.probe.metrics["test"].auroc, Estimate)
    # a cross-entropy after a prefix counts the BOS token in the prefix, as in the text
    prefix, text = render_prompts(tok, [PROMPT])[0], render_prompts(tok, [PROMPT])[0] + " Mix flour."
    got = cross_entropy(model, tok, [text], prefixes=[prefix])[0]
    ids, n_prefix = encode_text(tok, text), len(encode_text(tok, prefix))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, n_prefix - 1 : -1]
    direct = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(ids[n_prefix:]))
    assert got == pytest.approx(float(direct), abs=1e-5)
