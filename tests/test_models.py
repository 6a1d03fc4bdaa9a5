"""Model specs, embedded-model assembly and the hf backend's mechanics on a tiny model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from refute.errors import ChecksumError, ConfigError
from refute.models import GenerateConfig, GenerateRequest, Message, parse_spec
from refute.models._embedded import EMBEDDED, _is_verified, concatenate_verified, embedded_status


@pytest.mark.parametrize("spec,kind,target", [
    ("default", "embedded", "default"), ("gemma3-270m", "embedded", "gemma3-270m"),
    ("hf:Qwen/Qwen2.5-0.5B-Instruct", "hf", "Qwen/Qwen2.5-0.5B-Instruct"),
    ("gguf:/models/x.gguf", "gguf", "/models/x.gguf"), ("openai:gpt-4o-mini", "openai", "gpt-4o-mini"),
])
def test_specs_parse(spec, kind, target):
    parsed = parse_spec(spec)
    assert (parsed.kind, parsed.target) == (kind, target)


def test_unknown_spec_lists_the_valid_forms():
    with pytest.raises(ConfigError, match="hf:<repo id or dir>"):
        parse_spec("llama3")


def _chunks(tmp_path: Path, parts: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(parts):
        p = tmp_path / f"part{i}"
        p.write_bytes(data)
        paths.append(p)
    return paths


def test_chunks_are_concatenated_in_order_and_verified(tmp_path):
    parts = [b"alpha-", b"beta-", b"gamma"]
    digest = hashlib.sha256(b"".join(parts)).hexdigest()
    target = tmp_path / "cache" / "m.gguf"
    concatenate_verified(_chunks(tmp_path, parts), target, sha256=digest, size=16)
    assert target.read_bytes() == b"alpha-beta-gamma" and _is_verified(target, digest)
    target.write_bytes(b"tampered!!!!!!!!")  # a changed file is no longer trusted
    assert not _is_verified(target, digest)


def test_a_hash_mismatch_is_refused_and_leaves_no_file(tmp_path):
    target = tmp_path / "m.gguf"
    with pytest.raises(ChecksumError, match="expected 0000"):
        concatenate_verified(_chunks(tmp_path, [b"abc"]), target, sha256="0000", size=3)
    assert not target.exists() and list(tmp_path.glob("*.partial")) == []


def test_a_size_mismatch_is_refused_before_writing(tmp_path):
    with pytest.raises(ChecksumError, match="491,400,064"):
        concatenate_verified(_chunks(tmp_path, [b"abc"]), tmp_path / "m", sha256="x", size=491_400_064)


def test_embedded_models_report_licence_and_install_state():
    rows = {r.model.name: r for r in embedded_status()}
    assert set(rows) == set(EMBEDDED) == {"default", "gemma3-270m"}
    assert rows["default"].model.license == "Apache-2.0"
    assert rows["default"].model.sha256.startswith("1d9614638d18")


def _req(text: str, seed: int = 0, **cfg) -> GenerateRequest:
    return GenerateRequest((Message(role="user", content=text),), GenerateConfig(**cfg), seed)


def test_left_padded_batches_match_one_by_one_greedy(tiny_model_dir):
    from refute.models._hf import HFBackend

    prompts = ["bread", "How do I bake bread? Mix flour and water", "The quick brown fox jumps over"]
    one = HFBackend(tiny_model_dir, dtype="float32", batch_size=1)
    many = HFBackend(tiny_model_dir, dtype="float32", batch_size=3)
    a = dict(one.generate([_req(p, max_tokens=6) for p in prompts]))
    b = dict(many.generate([_req(p, max_tokens=6) for p in prompts]))
    assert [a[i].text for i in range(3)] == [b[i].text for i in range(3)]
    assert [a[i].input_tokens for i in range(3)] == [b[i].input_tokens for i in range(3)]
    assert a[0].input_tokens < a[1].input_tokens  # padding is not counted


def test_prompts_use_the_chat_template_and_base_models_get_a_transcript(tiny_backend):
    from refute.models._hf import render_prompt

    msgs = [Message(role="system", content="Be brief."), Message(role="user", content="Hi")]
    text = render_prompt(tiny_backend.tokenizer, msgs)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>") and text.endswith("<|im_start|>assistant\n")

    class NoTemplate:
        chat_template = None

    assert render_prompt(NoTemplate(), msgs) == "System: Be brief.\n\nUser: Hi\n\nAssistant:"


def test_seeded_sampling_depends_on_the_seed_and_respects_top_p(tiny_backend):
    draws = dict(tiny_backend.generate([_req("bread", s, max_tokens=8, temperature=1.0) for s in (1, 2, 1)]))
    assert draws[0].text == draws[2].text and draws[0].text != draws[1].text
    # top_p so small that only the arg-max survives: sampling equals greedy
    greedy = dict(tiny_backend.generate([_req("bread", 0, max_tokens=8)]))[0].text
    narrow = dict(tiny_backend.generate([_req("bread", 7, max_tokens=8, temperature=1.0, top_p=1e-6)]))[0].text
    assert narrow == greedy


def test_generation_stops_at_the_first_eos_and_counts_it(tiny_model_dir):
    from refute.models._hf import HFBackend, render_prompt

    backend = HFBackend(tiny_model_dir, dtype="float32")
    free = dict(backend.generate([_req("bread", max_tokens=6)]))[0]
    assert free.finish_reason == "length" and free.output_tokens == 6
    # declare the greedy path's third token an end-of-sequence token: generation must stop there
    prompt = render_prompt(backend.tokenizer, [Message(role="user", content="bread")])
    ids = backend.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    path = backend.model.generate(**ids, max_new_tokens=6, do_sample=False)[0, ids.input_ids.shape[1]:].tolist()
    stop_at = path.index(path[2]) + 1
    backend.eos_ids = [path[2]]
    stopped = dict(backend.generate([_req("bread", max_tokens=6)]))[0]
    assert stopped.finish_reason == "stop" and stopped.output_tokens == stop_at
