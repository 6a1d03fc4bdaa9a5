"""Continuous batching in the hf backend: same answers as plain ``generate``, fewer steps, shared prefill."""

from __future__ import annotations

import pytest

from refute.models import GenerateConfig, GenerateRequest, Message

PROMPTS = ["bread", "How do I bake bread? Mix flour and water", "The quick brown fox jumps over",
           "hello there", "a b c d e f g", "bake"]


def _req(text: str, seed: int = 0, **cfg) -> GenerateRequest:
    return GenerateRequest((Message(role="user", content=text),), GenerateConfig(**cfg), seed)


@pytest.fixture(scope="module")
def lively_dir(tmp_path_factory):
    """A tiny random model with spread-out weights: its greedy replies change token by token, so a
    wrong position, mask or cache row shows up in the text."""
    from _tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("lively"), init_std=1.0)


@pytest.fixture(scope="module")
def backends(lively_dir):
    from refute.models._hf import HFBackend

    continuous = HFBackend(lively_dir, dtype="float32", batch_size=3)
    whole = HFBackend(lively_dir, dtype="float32", batch_size=3, continuous=False)
    assert continuous.continuous and not whole.continuous
    return continuous, whole


def _hf_greedy(backend, prompt: str, max_new: int, eos: list[int] | None = None) -> list[int]:
    """The bare loop: transformers' own greedy ``generate`` on one unpadded prompt."""
    import torch

    from refute.models._hf import render_prompt

    text = render_prompt(backend.tokenizer, [Message(role="user", content=prompt)])
    ids = backend.tokenizer(text, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = backend.model.generate(**ids, max_new_tokens=max_new, do_sample=False,
                                     eos_token_id=eos or backend.eos_ids, pad_token_id=backend.tokenizer.pad_token_id)
    return out[0, ids.input_ids.shape[1]:].tolist()


def test_greedy_replies_equal_the_bare_generate_loop_with_refills_and_epochs(backends):
    continuous, _ = backends
    # two epochs of each prompt through 3 slots: rows are refilled and epochs share a prefill
    requests = [_req(p, seed, max_tokens=10) for p in PROMPTS for seed in (1, 2)]
    got = dict(continuous.generate(requests))
    for i, request in enumerate(requests):
        expected = continuous.tokenizer.decode(_hf_greedy(continuous, request.messages[0].content, 10),
                                               skip_special_tokens=True)
        assert got[i].text == expected, PROMPTS[i // 2]
        assert got[i].output_tokens == 10 and got[i].finish_reason == "length"


def test_a_row_that_ends_early_frees_its_slot_and_still_matches_generate(backends):
    continuous, _ = backends
    paths = {p: _hf_greedy(continuous, p, 8) for p in PROMPTS}
    # declared end-of-sequence: "bread" now ends after a few tokens, while other replies go on
    stop_token = next(t for t in paths["bread"][1:] if t != paths["bread"][0])
    ends_at = paths["bread"].index(stop_token) + 1
    saved = continuous.eos_ids
    continuous.eos_ids = [stop_token]
    try:
        got = dict(continuous.generate([_req(p, max_tokens=8) for p in PROMPTS]))
        for i, p in enumerate(PROMPTS):
            path = _hf_greedy(continuous, p, 8, eos=[stop_token])
            n = path.index(stop_token) + 1 if stop_token in path else 8
            assert got[i].output_tokens == n, p
            assert got[i].text == continuous.tokenizer.decode(path[:n], skip_special_tokens=True)
            assert got[i].finish_reason == ("stop" if stop_token in path else "length")
        assert 1 < got[0].output_tokens == ends_at < 8
        assert any(got[i].output_tokens == 8 for i in range(len(PROMPTS)))
    finally:
        continuous.eos_ids = saved


def test_sampled_replies_depend_only_on_their_seed_not_the_batch(lively_dir, backends):
    from refute.models._hf import HFBackend

    continuous, whole = backends
    alone = HFBackend(lively_dir, dtype="float32", batch_size=1)
    target = _req("The quick brown fox jumps over", 17, max_tokens=12, temperature=0.9, top_p=0.9)
    others = [_req(p, s, max_tokens=m, temperature=1.2)
              for p, s, m in zip(PROMPTS, range(6), (3, 12, 5, 7, 2, 9), strict=True)]
    solo = dict(alone.generate([target]))[0].text
    crowded = dict(continuous.generate([*others[:3], target, *others[3:]]))[3].text
    batched = dict(whole.generate([target, *others]))[0].text
    assert solo == crowded == batched
    # and the seed matters
    assert dict(alone.generate([_req("The quick brown fox jumps over", 18, max_tokens=12, temperature=0.9,
                                     top_p=0.9)]))[0].text != solo


def test_continuous_and_whole_batch_paths_agree_on_settings_and_stop_strings(backends):
    continuous, whole = backends
    first = dict(whole.generate([_req("bread", max_tokens=12)]))[0].text
    # a plain string the greedy reply contains after its start: both paths must end right after it
    stop = next(first[i : i + 2] for i in range(2, len(first) - 1) if first[i : i + 2].isalnum())
    requests = [_req(p, s, max_tokens=m, temperature=t, top_p=tp, stop=st)
                for p in PROMPTS[:3]
                for s, m, t, tp, st in ((0, 12, 0.0, 1.0, (stop,)), (5, 9, 0.7, 1.0, ()), (6, 6, 1.0, 0.3, ()))]
    a, b = dict(continuous.generate(requests)), dict(whole.generate(requests))
    for i in range(len(requests)):
        assert (a[i].text, a[i].finish_reason) == (b[i].text, b[i].finish_reason), requests[i]
        if not requests[i].config.stop:  # generate counts a stopped reply by re-encoding its text
            assert a[i].output_tokens == b[i].output_tokens
    assert a[0].text.endswith(stop) and a[0].finish_reason == "stop"
    assert a[0].output_tokens < 12 and a[0].text == continuous.tokenizer.decode(
        _hf_greedy(continuous, "bread", a[0].output_tokens), skip_special_tokens=True)


class _Counting:
    """Counts forward calls of a model: prefills (many tokens per row) and decode steps (one)."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, []
        self.config = model.config

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=True, logits_to_keep=0,
                cache=None):
        self.calls.append(tuple(input_ids.shape))
        return self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=use_cache, logits_to_keep=logits_to_keep, cache=cache)

    __call__ = forward


def _ids(backend, prompts, system: str | None = None):
    from refute.models._encode import encode_texts, render

    head = [Message(role="system", content=system)] if system else []
    return encode_texts(backend.tokenizer, [render(backend.tokenizer, [*head, Message(role="user", content=p)])
                                            for p in prompts])


def test_a_freed_slot_is_refilled_while_the_long_reply_goes_on(backends):
    from refute.models._batching import ContinuousBatcher

    continuous, _ = backends
    prompts = ["a", "How do I bake bread? Mix flour", "The quick brown fox jumps over"]  # "a" is admitted first
    requests = [_req(prompts[0], max_tokens=12), _req(prompts[1], max_tokens=3), _req(prompts[2], max_tokens=3)]
    model = _Counting(continuous.model)
    batcher = ContinuousBatcher(model, continuous.tokenizer, [], slots=2)
    got = dict(batcher.run(_ids(continuous, prompts), requests))
    steps = [shape for shape in model.calls if shape[1] == 1]
    # the long reply takes 11 decode steps; the two short ones run inside them, one after the other
    assert len(steps) == 11 and max(rows for rows, _ in steps) == 2
    assert [got[i].output_tokens for i in range(3)] == [12, 3, 3]
    assert steps[:4] == [(2, 1)] * 4 and steps[-1] == (1, 1)


def test_epochs_and_a_shared_prefix_are_prefilled_once(backends):
    from refute.models._batching import ContinuousBatcher

    continuous, _ = backends
    prompts = PROMPTS[:3]
    ids = _ids(continuous, prompts, system="You are a careful assistant. Answer briefly and plainly.")
    shared = next(k for k in range(min(map(len, ids))) if len({tuple(i[: k + 1]) for i in ids}) > 1)
    assert shared >= 8  # the chat template's opening and the system prompt
    model = _Counting(continuous.model)
    batcher = ContinuousBatcher(model, continuous.tokenizer, [], slots=16)
    requests = [_req(p, seed, max_tokens=4, temperature=1.0) for p in prompts for seed in range(5)]
    got = dict(batcher.run([ids[i // 5] for i in range(15)], requests))
    assert len(got) == 15
    prefills = [shape for shape in model.calls if shape[1] > 1]
    # one pass over the shared prefix, one over the three prompts' own suffixes (left-padded)
    assert prefills == [(1, shared), (3, max(len(i) for i in ids) - shared)]
    assert len({got[i].text for i in range(5)}) > 1  # five epochs, five seeds, not one copied reply


def test_prompts_admitted_together_prefill_their_common_template_once_with_the_same_numbers(backends):
    import torch

    from refute.models._batching import ContinuousBatcher

    continuous, _ = backends
    template = "Decode this message and then answer it in full: "
    ids = _ids(continuous, [template + "bake bread", template + "The quick brown fox jumps"])
    model = _Counting(continuous.model)
    batcher = ContinuousBatcher(model, continuous.tokenizer, [], slots=4)
    shared = next(k for k in range(min(map(len, ids))) if ids[0][k] != ids[1][k])
    states = batcher._prefill([tuple(i) for i in ids], None)
    assert model.calls == [(1, shared), (2, max(map(len, ids)) - shared)]
    for prompt, state in zip(ids, states, strict=True):  # what one plain pass over the prompt gives
        with torch.inference_mode():
            plain = continuous.model(input_ids=torch.tensor([prompt]), use_cache=True)
        assert state.length == len(prompt)
        torch.testing.assert_close(state.logits, plain.logits[0, -1].float(), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(state.kv[1][0], plain.past_key_values.layers[1].keys, rtol=1e-4, atol=1e-4)


def test_the_engine_hands_a_long_queue_and_models_with_sliding_windows_fall_back(backends):
    from transformers import Gemma3TextConfig, MistralConfig, Qwen2Config

    from refute.models._batching import supports_continuous_batching

    continuous, whole = backends
    assert continuous.preferred_batch_size == 8 * 3 and whole.preferred_batch_size == 3
    assert supports_continuous_batching(continuous.model)

    class Model:
        def __init__(self, config):
            self.config = config

        def forward(self, input_ids, position_ids=None, cache=None):
            return None

    class NoPositions(Model):
        def forward(self, input_ids, cache=None):
            return None

    tiny = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2}
    assert supports_continuous_batching(Model(Qwen2Config(**tiny)))
    assert not supports_continuous_batching(NoPositions(Qwen2Config(**tiny)))
    assert not supports_continuous_batching(Model(Gemma3TextConfig(**tiny, head_dim=8)))
    assert not supports_continuous_batching(Model(Qwen2Config(**tiny, use_sliding_window=True, sliding_window=4)))
    assert not supports_continuous_batching(Model(MistralConfig(**tiny, sliding_window=16)))


def test_a_failure_mid_run_keeps_finished_replies_and_fails_only_the_rest(lively_dir, monkeypatch):
    from refute.models import _batching
    from refute.models._hf import HFBackend

    backend = HFBackend(lively_dir, dtype="float32", batch_size=2)
    calls = {"n": 0}
    real = _batching.ContinuousBatcher._decode

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("out of memory")
        return real(self, *args)

    monkeypatch.setattr(_batching.ContinuousBatcher, "_decode", flaky)
    requests = [_req("a", max_tokens=2), _req("bread and butter", max_tokens=2), _req("bake", max_tokens=9)]
    got = list(backend.generate(requests))
    assert sorted(i for i, _ in got) == [0, 1, 2]  # every request answered exactly once
    by_index = dict(got)
    assert by_index[0].ok and by_index[1].ok and by_index[0].output_tokens == 2
    assert by_index[2].error == "RuntimeError: out of memory"


def test_a_run_through_the_engine_is_the_same_with_either_path(lively_dir, tmp_path):
    import json

    from refute.engine import TaskConfig, run_task
    from refute.models._hf import HFBackend
    from refute.store import Store

    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n" for i, p in enumerate(PROMPTS)))
    task = TaskConfig(dataset=str(data), epochs=3, generate=GenerateConfig(max_tokens=6, temperature=0.8))
    texts = []
    for continuous in (True, False):
        backend = HFBackend(lively_dir, dtype="float32", batch_size=4, continuous=continuous)
        with Store(tmp_path / f"{continuous}.db") as store:
            run = run_task(task, backend, store, progress=False)
            texts.append({(s.prompt_id, s.epoch): s.completion for s in store.samples(run.id)})
    assert len(texts[0]) == 18 and texts[0] == texts[1]


def test_seeded_draws_follow_the_softmax_and_never_leave_the_nucleus():
    import torch

    from refute.models._batching import sample_next

    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -30.0]])
    draws = 4000

    def frequencies(**cfg):
        config = GenerateConfig(**cfg)
        counts = torch.zeros(6)
        for seed in range(draws):
            counts[sample_next(logits, [config], [torch.Generator().manual_seed(seed)])[0]] += 1
        return counts / draws

    expected = (logits[0] / 0.8).softmax(-1)
    observed = frequencies(temperature=0.8)
    # each frequency within 4 binomial standard errors of its probability
    assert bool(((observed - expected).abs() <= 4 * (expected * (1 - expected) / draws).sqrt() + 1e-9).all())
    # top-p 0.75 at T=1 keeps the tokens whose preceding mass is below 0.75: the first two only
    nucleus = frequencies(temperature=1.0, top_p=0.75)
    assert nucleus[2:].sum() == 0 and nucleus[:2].min() > 0.2
    assert sample_next(logits, [GenerateConfig()], [None]) == [0]  # greedy: no generator needed


def test_a_prompt_that_begins_another_and_the_edge_settings_decode_like_generate(backends):
    import torch

    from refute.models._batching import ContinuousBatcher

    continuous, _ = backends
    (short,) = _ids(continuous, ["bake bread"])
    longer = short + continuous.tokenizer.encode(" and butter, then rest it", add_special_tokens=False)
    batcher = ContinuousBatcher(continuous.model, continuous.tokenizer, continuous.eos_ids, slots=2)
    requests = [_req("", max_tokens=7), _req("", max_tokens=7), _req("", max_tokens=1)]
    got = dict(batcher.run([short, longer, longer], requests))
    for i, ids in enumerate([short, longer, longer]):
        with torch.inference_mode():
            out = continuous.model.generate(
                torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=requests[i].config.max_tokens, do_sample=False)
        assert got[i].text == continuous.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)
    assert got[2].output_tokens == 1 and got[2].finish_reason == "length"
    assert dict(batcher.run([], [])) == {}
    # a reply whose first token ends it: one token, finished by "stop"
    first = _hf_greedy(continuous, "bread", 1)[0]
    ends = ContinuousBatcher(continuous.model, continuous.tokenizer, [first], slots=2)
    reply = dict(ends.run(_ids(continuous, ["bread"]), [_req("bread", max_tokens=5)]))[0]
    assert (reply.output_tokens, reply.finish_reason) == (1, "stop")
