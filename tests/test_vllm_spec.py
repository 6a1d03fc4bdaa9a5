"""``vllm:<model>``: the spec, the errors where vLLM cannot run, and what each request asks vLLM for
(against a fake ``vllm`` module, since vLLM needs a CUDA GPU)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from refute.engine import TaskConfig, run_task
from refute.errors import ConfigError
from refute.models import GenerateConfig, GenerateRequest, Message, _vllm, load_model, parse_spec
from refute.store import Store


def test_the_spec_parses_for_a_hub_id_and_a_directory() -> None:
    spec = parse_spec("vllm:Qwen/Qwen2.5-7B-Instruct")
    assert (spec.kind, spec.target, spec.base, spec.edits) == ("vllm", "Qwen/Qwen2.5-7B-Instruct",
                                                               "vllm:Qwen/Qwen2.5-7B-Instruct", ())
    assert parse_spec("vllm:/models/qwen-7b").target == "/models/qwen-7b"
    with pytest.raises(ConfigError, match="unknown model spec 'vllm:'"):
        parse_spec("vllm:")


def test_an_edit_on_a_vllm_base_is_refused_with_the_hf_spec_to_use(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"part 2 .*use hf:org/m as the base"):
        parse_spec(f"vllm:org/m+lora:{tmp_path}")


@pytest.mark.parametrize(("importable", "gpu"), [(False, False), (True, False), (False, True)])
def test_loading_without_vllm_or_a_gpu_says_which_is_missing_and_what_to_do(
        monkeypatch: pytest.MonkeyPatch, importable: bool, gpu: bool) -> None:
    monkeypatch.setattr(_vllm, "_vllm_importable", lambda: importable)
    monkeypatch.setattr(_vllm, "_cuda_gpu", lambda: gpu)
    with pytest.raises(ConfigError) as info:
        load_model("vllm:org/m")
    message = str(info.value)
    assert ("vllm package is not installed" in message) is not importable
    assert ("no CUDA GPU is visible" in message) is not gpu
    if importable != gpu:
        assert ("(vllm is installed)" if importable else "(a CUDA GPU is present)") in message
    # what to do instead: install it on a GPU machine, or serve it and point openai: at the server
    assert "pip install vllm" in message
    assert "vllm serve org/m --port 8000" in message and "-m openai:org/m --base-url" in message


def test_this_machine_really_lacks_vllm_and_reports_it() -> None:
    if _vllm._vllm_importable() and _vllm._cuda_gpu():
        pytest.skip("vLLM and a CUDA GPU are both here")
    with pytest.raises(ConfigError, match="runs vLLM in this process, but"):
        load_model("vllm:org/m")


def test_base_url_is_refused_for_a_vllm_spec() -> None:
    with pytest.raises(ConfigError, match="--base-url only applies to openai"):
        load_model("vllm:org/m", base_url="http://localhost:8000/v1")


# -- a fake vllm module: it records what it is asked and answers from the token ids -------------


class _Tokenizer:
    chat_template = "fake"

    def apply_chat_template(self, messages: list[dict[str, str]], *, add_generation_prompt: bool,
                            tokenize: bool) -> str:
        assert add_generation_prompt and not tokenize
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, texts: list[str], add_special_tokens: bool) -> Any:
        assert not add_special_tokens  # a chat template writes its own special tokens
        return types.SimpleNamespace(input_ids=[[ord(c) for c in t] for t in texts])


class _SamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class _LLM:
    made: ClassVar[list[_LLM]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[tuple[list[dict[str, Any]], list[_SamplingParams]]] = []
        _LLM.made.append(self)

    def get_tokenizer(self) -> _Tokenizer:
        return _Tokenizer()

    def generate(self, prompts: list[dict[str, Any]], params: list[_SamplingParams], *, use_tqdm: bool) -> list[Any]:
        assert not use_tqdm
        self.calls.append((prompts, params))
        texts = ["".join(map(chr, p["prompt_token_ids"])) for p in prompts]
        if any("TOO LONG" in t for t in texts):
            raise ValueError("prompt is longer than the maximum model length")
        out = []
        for text, p in zip(texts, params, strict=True):
            reply = f"reply to {text.split('<user>')[-1].removesuffix('<assistant>')}"[: p.kwargs["max_tokens"]]
            finish = "length" if len(reply) == p.kwargs["max_tokens"] else "stop"
            out.append(types.SimpleNamespace(
                prompt_token_ids=[ord(c) for c in text], metrics=None,
                outputs=[types.SimpleNamespace(text=reply, token_ids=list(range(len(reply))), finish_reason=finish)]))
        return out


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.LLM = _LLM  # type: ignore[attr-defined]
    module.SamplingParams = _SamplingParams  # type: ignore[attr-defined]
    module.__version__ = "0.0-fake"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setattr(_vllm, "_vllm_importable", lambda: True)
    monkeypatch.setattr(_vllm, "_cuda_gpu", lambda: True)
    _LLM.made.clear()
    return module


def _req(text: str, config: GenerateConfig, seed: int) -> GenerateRequest:
    return GenerateRequest((Message(role="system", content="be brief"), Message(role="user", content=text)),
                           config, seed)


def test_each_request_becomes_its_own_sampling_params(fake_vllm: types.ModuleType) -> None:
    backend = load_model("vllm:org/m", dtype="bfloat16", batch_size=16)
    (llm,) = _LLM.made
    assert llm.kwargs == {"model": "org/m", "dtype": "bfloat16", "max_num_seqs": 16}
    assert backend.preferred_batch_size == 64
    assert backend.info.spec == "vllm:org/m" and backend.info.backend == "vllm"
    assert backend.info.details["vllm"] == "0.0-fake" and backend.info.details["max_num_seqs"] == 16
    greedy = GenerateConfig(max_tokens=40)
    sampled = GenerateConfig(max_tokens=7, temperature=0.7, top_p=0.9, stop=("\n\n", "END"))
    got = dict(backend.generate([_req("hi", greedy, 11), _req("there", sampled, 12345)]))
    (prompts, params), = llm.calls
    assert [p.kwargs for p in params] == [
        {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 40, "seed": 11, "stop": None,
         "include_stop_str_in_output": True},
        {"n": 1, "temperature": 0.7, "top_p": 0.9, "max_tokens": 7, "seed": 12345, "stop": ["\n\n", "END"],
         "include_stop_str_in_output": True},
    ]
    # token ids of the chat-templated text, as the hf backend would feed them
    assert "".join(map(chr, prompts[0]["prompt_token_ids"])) == "<system>be brief<user>hi<assistant>"
    assert got[0].text == "reply to hi" and got[0].finish_reason == "stop" and got[0].ok
    assert got[0].output_tokens == len("reply to hi")
    assert got[0].input_tokens == len("<system>be brief<user>hi<assistant>")
    assert got[1].text == "reply t" and got[1].finish_reason == "length"
    backend.close()


def test_a_request_vllm_rejects_fails_alone(fake_vllm: types.ModuleType) -> None:
    backend = load_model("vllm:org/m")
    config = GenerateConfig(max_tokens=32)
    got = dict(backend.generate([_req("fine", config, 1), _req("TOO LONG", config, 2), _req("also", config, 3)]))
    assert got[0].text == "reply to fine" and got[2].text == "reply to also"
    assert not got[1].ok and "ValueError: prompt is longer" in (got[1].error or "")
    assert got[1].error.startswith("vllm:org/m: ")  # type: ignore[union-attr]
    # one batched call, then each request alone
    assert [len(prompts) for prompts, _ in _LLM.made[0].calls] == [3, 1, 1, 1]


def test_a_run_through_the_engine_stores_vllm_replies(fake_vllm: types.ModuleType, tmp_path: Path) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"q{i}"}) + "\n" for i in range(5)))
    task = TaskConfig(dataset=str(data), epochs=2, generate=GenerateConfig(max_tokens=32, temperature=0.5),
                      scorers=[{"name": "refusal_patterns"}])
    backend = load_model("vllm:org/m")
    try:
        with Store(tmp_path / "s.db") as store:
            run = run_task(task, backend, store, progress=False)
            samples = store.samples(run.id)
    finally:
        backend.close()
    assert run.status == "completed" and run.model_spec == "vllm:org/m"
    assert sorted(s.completion for s in samples) == sorted(f"reply to q{i}" for i in range(5) for _ in range(2))
    seeds = [p.kwargs["seed"] for _, params in _LLM.made[0].calls for p in params]
    assert sorted(seeds) == sorted(s.seed for s in samples) and len(set(seeds)) == 10
