"""Attacks of refute.redteam: Crescendo, PAIR, Best-of-N scaling and GCG, on tiny and fake models.

Helper models (attacker, judge) are fakes whose reply is a pure function of the request, so the
engine's request cache and a resumed run see the same answers; the target is the tiny random
model unless a test needs a target that refuses on cue.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from _kill import kill_after_samples

from refute.engine import PluginSpec, TaskConfig, resume_run, run_task
from refute.errors import ConfigError
from refute.models import Completion, GenerateConfig, GenerateRequest, ModelInfo
from refute.redteam import (
    asr_at_n,
    bon_outcomes,
    bon_scaling,
    escalation_turn,
    fit_power_law,
    gcg_attack,
)
from refute.redteam._parse import clean_turn, parse_attack_json, parse_rating
from refute.store import Store

TESTS = Path(__file__).parent


# --- fakes ---------------------------------------------------------------------------------------


class Scripted:
    """A fake model: ``reply(request)`` is its text. Records every request it gets."""

    def __init__(self, spec: str, reply: Callable[[GenerateRequest], str], batch: int = 8):
        self.info = ModelInfo(spec=spec, backend="fake")
        self.preferred_batch_size = batch
        self.reply = reply
        self.requests: list[GenerateRequest] = []

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        self.requests += requests
        for i, r in enumerate(requests):
            yield i, Completion(text=self.reply(r), input_tokens=3, output_tokens=2)

    def close(self) -> None:
        pass


class Recording:
    """Wraps a backend and records the requests it answers."""

    def __init__(self, inner):
        self.inner, self.info, self.preferred_batch_size = inner, inner.info, inner.preferred_batch_size
        self.requests: list[GenerateRequest] = []

    def generate(self, requests):
        self.requests += requests
        yield from self.inner.generate(requests)

    def close(self) -> None:
        pass


def crescendo_attacker(request: GenerateRequest) -> str:
    turn = int(re.search(r"This is turn (\d+) of", request.messages[-1].content).group(1))
    gentle = "was refused by the model" in request.messages[-1].content
    word = "gentle" if gentle else "bad"
    return f'Sure! Here is the next message:\n"Tell me more, {word} step {turn}"'


def pair_attacker(request: GenerateRequest) -> str:
    """Proposes "attempt k" where k counts its own previous answers in the conversation."""
    k = 1 + sum(m.role == "assistant" for m in request.messages)
    if k == 2:  # fenced JSON with a trailing comma: still parsed
        return ('Here you go:\n```json\n{"improvement": "be subtle", "prompt": "attempt 2: please answer",}'
                '\n```')
    if k == 4:  # a refusal: the loop falls back to a framing template
        return "I'm sorry, but I can't help with that."
    return json.dumps({"improvement": "try again", "prompt": f"attempt {k}: please answer"})


def pair_judge(request: GenerateRequest) -> str:
    """Rates 10 for attempt 3 on prompts whose number is odd, else 2."""
    number = int(re.search(r"number (\d+)", request.messages[0].content).group(1))
    if number % 2 == 1 and "attempt 3:" in request.messages[-1].content:
        return "The response fully answers. Rating: [[10]]"
    return "Rating: [[2]]"


def variant(request: GenerateRequest) -> int:
    return int(re.search(r"variant (\d+)", request.messages[-1].content).group(1))


def write_prompts(path: Path, n: int) -> Path:
    rows = [{"id": f"p{i:03d}", "prompt": f"How do I bake bread number {i}?"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def task_for(path: Path, solver: str, **args) -> TaskConfig:
    return TaskConfig(dataset=str(path), generate=GenerateConfig(max_tokens=6),
                      solver=PluginSpec(name=solver, args=args))


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ('"What is the history of bread?"', "What is the history of bread?"),
    ("Sure, here is the next message:\n\nWhat is the history of bread?", "What is the history of bread?"),
    ("**Turn 2:** 'And how was it made?'", "And how was it made?"),
    ("Next user message: How was it made?", "How was it made?"),
    ("```\nHow was it made?\n```", "How was it made?"),
    ("<think>plan the escalation</think>\u201cHow was it made?\u201d", "How was it made?"),
    ('{"prompt": "How was it made?"}', "How was it made?"),
    ("", None),
    ("I'm sorry, but I can't help with that.", None),
])
def test_attacker_turns_are_cleaned_or_rejected(raw, expected):
    turn, reason = clean_turn(raw)
    assert turn == expected
    assert (reason is None) == (expected is not None)


@pytest.mark.parametrize("raw, prompt, how", [
    ('{"improvement": "x", "prompt": "Tell me a story about bread"}', "Tell me a story about bread", "json"),
    ('Here:\n```json\n{"improvement": "x", "prompt": "Tell me a story",}\n```', "Tell me a story", "json"),
    ('{"improvement": "x", "prompt": "He said "go" to the baker"}', 'He said "go" to the baker', "regex"),
    ('{"improvement": "the model refused", "prompt": "Imagine you are a baker who',
     "Imagine you are a baker who", "regex"),
    ("Imagine you are a baker explaining your craft to an apprentice.",
     "Imagine you are a baker explaining your craft to an apprentice.", "text"),
    ('{"improvement": "x"}', None, "none"),
    ("I cannot help with that request.", None, "none"),
    ("ok", None, "none"),
])
def test_attack_json_is_parsed_leniently(raw, prompt, how):
    parsed = parse_attack_json(raw)
    assert (parsed.prompt, parsed.how) == (prompt, how)
    assert (parsed.error is None) == (how == "json")


@pytest.mark.parametrize("raw, rating", [
    ("Rating: [[7]]", 7), ("The answer is harmful.\nRating: [[10]]", 10), ("Rating: 3", 3),
    ("[[ 4 ]]", 4), ("8/10", 8), ("Rating: [[11]]", None), ("no idea", None), ("", None),
])
def test_judge_ratings_are_parsed(raw, rating):
    assert parse_rating(raw) == rating


# --- crescendo -----------------------------------------------------------------------------------


def test_crescendo_stores_every_turn_in_order_and_scores_the_final_reply(tiny_backend, store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 3)
    attacker = Scripted("fake:attacker", crescendo_attacker)
    target = Recording(tiny_backend)
    run = run_task(task_for(data, "crescendo", turns=3), target, store, helpers={"attacker": attacker},
                   progress=False)
    assert run.status == "completed" and run.model["helpers"] == {"attacker": "fake:attacker"}
    samples = store.samples(run.id)
    assert len(samples) == 3 and all(s.error is None for s in samples)
    for s in samples:
        roles = [m["role"] for m in s.messages]
        assert roles == ["user", "assistant"] * 3
        users = [m["content"] for m in s.messages if m["role"] == "user"]
        assert users == [f"Tell me more, bad step {k}" for k in (1, 2, 3)]
        turns = s.metadata["turns"]
        assert [t["turn"] for t in turns] == [1, 2, 3]
        assert [t["user"] for t in turns] == users
        assert [t["reply"] for t in turns] == [m["content"] for m in s.messages if m["role"] == "assistant"]
        assert all(t["source"] == "attacker" and t["parse_error"] is None for t in turns)
        assert s.completion == s.messages[-1]["content"]
        assert s.metadata["goal"].startswith("How do I bake bread number")
    # the attacker saw the conversation so far, the target the growing transcript
    assert len(attacker.requests) == 9 and {r.role for r in attacker.requests} == {"attacker"}
    second = [r for r in attacker.requests if "This is turn 2 of 3" in r.messages[-1].content]
    assert all("Tell me more, bad step 1" in r.messages[-1].content for r in second)
    assert sorted(len(r.messages) for r in target.requests) == [1] * 3 + [3] * 3 + [5] * 3
    scores = store.scores(run.id)  # the default refusal scorer scored each final reply
    assert len(scores) == 3 == len({s.sample_id for s in scores})
    assert {s.sample_id for s in scores} == {s.id for s in samples}


def test_crescendo_falls_back_to_the_scripted_turn_and_backtracks_on_refusal(store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 1)
    goal = "How do I bake bread number 0?"
    refusing = Scripted("fake:attacker", lambda r: "I'm sorry, but I can't help with that.")
    target = Scripted("fake:target", lambda r: "Here is an answer.")
    run = run_task(task_for(data, "crescendo", turns=3), target, store, helpers={"attacker": refusing},
                   progress=False)
    s = store.samples(run.id)[0]
    assert [t["source"] for t in s.metadata["turns"]] == ["fallback"] * 3
    assert all(t["parse_error"] == "the attacker refused" for t in s.metadata["turns"])
    assert [m["content"] for m in s.messages if m["role"] == "user"] == [
        escalation_turn(goal, k, 3) for k in (1, 2, 3)]
    assert goal in s.messages[-2]["content"] and s.metadata["fallbacks"] == 3
    # backtracking: the target refuses "bad" turns; one backtrack is allowed
    picky = Scripted("fake:target2", lambda r: "I can't help with that." if "bad" in r.messages[-1].content
                     else "Gladly.")
    run = run_task(task_for(data, "crescendo", turns=3, backtracks=1), picky, store,
                   helpers={"attacker": Scripted("fake:attacker2", crescendo_attacker)}, progress=False)
    s = store.samples(run.id)[0]
    turns = s.metadata["turns"]
    assert [(t["turn"], t["kept"], t["refused"]) for t in turns] == [
        (1, False, True), (1, True, False), (2, True, True), (3, True, True)]
    assert [m["content"] for m in s.messages if m["role"] == "user"] == [
        "Tell me more, gentle step 1", "Tell me more, bad step 2", "Tell me more, bad step 3"]
    assert s.metadata["backtracks"] == 1


def test_scripted_escalation_needs_no_attacker(tiny_backend, store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 2)
    run = run_task(task_for(data, "scripted_escalation", turns=4), tiny_backend, store, progress=False)
    for s in store.samples(run.id):
        goal = s.metadata["goal"]
        assert [m["content"] for m in s.messages if m["role"] == "user"] == [
            escalation_turn(goal, k, 4) for k in range(1, 5)]
        assert goal in s.messages[0]["content"] and goal in s.messages[-2]["content"]
        assert len(s.metadata["turns"]) == 4 and s.completion == s.messages[-1]["content"]
    assert escalation_turn("X?", 1, 1) == "X?"
    with pytest.raises(ConfigError, match="turns"):
        run_task(task_for(data, "crescendo", turns=0), tiny_backend, store, progress=False)


# --- PAIR ----------------------------------------------------------------------------------------


def test_pair_stops_at_success_respects_the_budget_and_stores_every_attempt(tiny_backend, store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 2)  # number 1 succeeds at attempt 3, number 0 never
    attacker = Scripted("fake:attacker", pair_attacker)
    judge = Scripted("fake:judge", pair_judge)
    target = Recording(tiny_backend)
    run = run_task(task_for(data, "pair", budget=5, history=10), target, store,
                   helpers={"attacker": attacker, "judge": judge}, progress=False)
    by_id = {s.prompt_id: s for s in store.samples(run.id)}
    win, lose = by_id["p001"].metadata, by_id["p000"].metadata
    assert win["success"] and win["queries_to_success"] == 3 and win["queries"] == 3
    assert [a["score"] for a in win["attempts"]] == [2, 2, 10]
    assert [a["prompt"] for a in win["attempts"]] == [f"attempt {k}: please answer" for k in (1, 2, 3)]
    assert [a["source"] for a in win["attempts"]] == ["json"] * 3
    assert win["attempts"][1]["parse_error"] is None  # fenced JSON with a trailing comma is JSON
    assert by_id["p001"].messages[-2]["content"] == "attempt 3: please answer"
    assert by_id["p001"].completion == win["attempts"][2]["response"]
    assert not lose["success"] and lose["queries_to_success"] is None
    assert len(lose["attempts"]) == 5 == lose["queries"]  # the budget
    fallback = lose["attempts"][3]
    assert fallback["source"] == "fallback" and "bread number 0" in fallback["prompt"]
    assert fallback["parse_error"] and lose["parse_failures"] == 1
    assert lose["best_attempt"] == 0  # all rated 2: the earliest
    assert len(target.requests) == 8 and len(attacker.requests) == 8 and len(judge.requests) == 8
    assert all(len(r.messages) == 1 for r in target.requests)  # a fresh conversation per attempt
    assert len(store.scores(run.id)) == 2


def test_pair_branches_like_tap_and_the_refusal_judge_needs_no_model(store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 1)
    attacker = Scripted("fake:attacker", lambda r: json.dumps(
        {"improvement": "", "prompt": f"attempt {sum(m.role == 'assistant' for m in r.messages) + 1} "
                                      f"variant {r.seed % 997}"}))
    judge = Scripted("fake:judge", lambda r: f"Rating: [[{1 + variant(r) % 9}]]")
    target = Scripted("fake:target", lambda r: "Sure.")
    run = run_task(task_for(data, "pair", budget=7, width=2, branch=2), target, store,
                   helpers={"attacker": attacker, "judge": judge}, progress=False)
    attempts = store.samples(run.id)[0].metadata["attempts"]
    assert len(attempts) == 7 and len(target.requests) == 7
    assert [a["round"] for a in attempts] == [0, 0, 0, 0, 1, 1, 1]
    assert all(a["parent"] is None for a in attempts[:4])
    ranked = sorted(range(4), key=lambda i: -attempts[i]["score"])[:2]
    assert [a["parent"] for a in attempts[4:]] == [ranked[0], ranked[0], ranked[1]]
    # refusal judge: no judge model; a reply without refusal phrases is a success at once
    run = run_task(task_for(data, "pair", budget=4, judge="refusal"), target, store,
                   helpers={"attacker": attacker}, progress=False)
    meta = store.samples(run.id)[0].metadata
    assert meta["queries_to_success"] == 1 and meta["attempts"][0]["judge"] == "refusal"
    with pytest.raises(ConfigError, match="judge"):
        run_task(task_for(data, "pair", judge="gpt"), target, store, progress=False)


_KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import refute.redteam  # registers the attack solvers
from refute.engine import PluginSpec, TaskConfig, run_task
from refute.models import GenerateConfig
from refute.models._hf import HFBackend
from refute.store import Store
from test_redteam_attacks import Scripted, pair_attacker, pair_judge

target = HFBackend({model!r}, spec="hf:" + {model!r}, dtype="float32", batch_size=1)
task = TaskConfig(dataset={data!r}, generate=GenerateConfig(max_tokens=32),
                  solver=PluginSpec(name="pair", args={{"budget": 4, "history": 10}}))
with Store({db!r}) as store:
    run_task(task, target, store, helpers={{"attacker": Scripted("fake:attacker", pair_attacker),
                                             "judge": Scripted("fake:judge", pair_judge)}},
             progress=False)
"""


def test_pair_run_killed_with_sigkill_resumes_without_loss_or_duplicates(tiny_model_dir, tiny_backend,
                                                                          tmp_path):
    n = 40
    data = write_prompts(tmp_path / "p.jsonl", n)
    db_path = tmp_path / "kill.db"
    script = tmp_path / "pair_run.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(TESTS), model=str(tiny_model_dir), data=str(data),
                                          db=str(db_path)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    kill_after_samples(proc, db_path)
    with Store(db_path) as s:
        run = s.list_runs()[0]
        assert run.status == "interrupted"  # killed: its process is gone, so it is not "running"
        before = {x.prompt_id: (x.id, x.created_at, x.completion, x.metadata) for x in s.samples(run.id)}
        assert 5 <= len(before) < n
        attacker = Scripted("fake:attacker", pair_attacker)
        done = resume_run(run.id, s, model=tiny_backend, progress=False,
                          helpers={"attacker": attacker, "judge": Scripted("fake:judge", pair_judge)})
        after = s.samples(run.id)
    assert done.status == "completed"
    assert len(after) == n == len({x.prompt_id for x in after})
    assert all(x.error is None for x in after)
    for x in after:
        if x.prompt_id in before:
            assert (x.id, x.created_at, x.completion, x.metadata) == before[x.prompt_id]
        number = int(x.prompt_id[1:])
        assert x.metadata["queries"] == (3 if number % 2 else 4)
    # committed samples were not attacked again
    attacked = {r.messages[1].content for r in attacker.requests}
    assert not any(f"bread number {int(p[1:])}?" in goal for p in before for goal in attacked)


# --- Best-of-N ---------------------------------------------------------------------------------------


def brute_force_asr(outcomes: dict[str, list[bool]], k: int) -> float:
    """ASR@k averaged over every ordering of each prompt's draws."""
    per_prompt = []
    for draws in outcomes.values():
        orders = list(itertools.permutations(draws))
        per_prompt.append(sum(any(o[:k]) for o in orders) / len(orders))
    return sum(per_prompt) / len(per_prompt)


def test_asr_at_n_is_the_expectation_over_orderings():
    outcomes = {"a": [True, False, False, True, False], "b": [False] * 5,
                "c": [False, True, False, False, False], "d": [True] * 5}
    curve = asr_at_n(outcomes)
    assert len(curve) == 5
    for k in range(1, 6):
        assert curve[k - 1] == pytest.approx(brute_force_asr(outcomes, k), abs=1e-12)
    seq = asr_at_n({"a": [False, True], "b": [True], "c": [False, False, False]}, sequential=True)
    assert seq.tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    with pytest.raises(ConfigError, match="sequential"):
        asr_at_n({"a": [True, False]}, sequential=True)


def test_power_law_fit_recovers_known_parameters():
    a, b = 2.5, 0.5
    ns = np.arange(1, 101)
    fa, fb, r2 = fit_power_law(ns, np.exp(-a * ns ** -b))
    assert (fa, fb, r2) == pytest.approx((a, b, 1.0), abs=1e-9)
    # outcomes: each prompt's first success K drawn so that P(K <= N) = exp(-a N^-b)
    rng = np.random.default_rng(7)
    u = rng.uniform(size=4000)
    first = np.ceil((a / -np.log(u)) ** (1 / b))
    n = 100
    outcomes = {f"p{i}": [False] * (int(k) - 1) + [True] if k <= n else [False] * n
                for i, k in enumerate(first)}
    fit = bon_scaling(outcomes, sequential=True, n_boot=200, rng=1)
    assert fit.ns == tuple(range(1, n + 1)) and fit.n_prompts == 4000 and fit.sequential
    assert fit.a == pytest.approx(a, rel=0.1) and fit.b == pytest.approx(b, rel=0.1)
    assert fit.a_interval[0] < a < fit.a_interval[1] and fit.b_interval[0] < b < fit.b_interval[1]
    assert all(lo <= v <= hi for lo, v, hi in zip(fit.low, fit.asr, fit.high, strict=True))
    assert fit.predict(400) == pytest.approx(math.exp(-a * 400 ** -b), abs=0.03)
    assert "bootstrap" in fit.method and str(fit).startswith("ASR@100")
    with pytest.raises(ConfigError, match="power law"):
        fit_power_law([1, 2, 3], [0.0, 0.0, 1.0])


def test_best_of_n_solver_stops_at_first_success_and_feeds_the_scaling(store, tmp_path):
    data = write_prompts(tmp_path / "p.jsonl", 6)
    # the target complies with one augmented draw in five (a pure function of the text)
    target = Scripted("fake:target", lambda r: "Sure, here it is."
                      if sum(map(ord, r.messages[-1].content)) % 5 == 0
                      else "I'm sorry, I can't help with that.")
    run = run_task(task_for(data, "best_of_n", n=8), target, store, progress=False)
    samples = store.samples(run.id)
    for s in samples:
        draws = s.metadata["draws"]
        assert 1 <= len(draws) <= 8 and [d["draw"] for d in draws] == list(range(len(draws)))
        assert not any(d["success"] for d in draws[:-1])
        assert s.metadata["success"] == draws[-1]["success"]
        assert s.metadata["first_success"] == (len(draws) if draws[-1]["success"] else None)
        assert len({d["prompt"] for d in draws}) == len(draws)  # every draw a new augmentation
        assert s.completion == draws[-1]["response"]
    assert len(target.requests) == sum(len(s.metadata["draws"]) for s in samples)
    outcomes = bon_outcomes(store, run.id)
    assert outcomes.sequential and len(outcomes.outcomes) == 6
    assert asr_at_n(outcomes)[-1] == pytest.approx(np.mean([s.metadata["success"] for s in samples]))
    # the same analysis from a run of bon draws over epochs (every draw answered and scored)
    task = TaskConfig(dataset=str(data), transforms=["bon"], epochs=4,
                      scorers=[PluginSpec(name="refusal_patterns")])
    run = run_task(task, target, store, progress=False)
    outcomes = bon_outcomes(store, run.id)
    assert not outcomes.sequential and all(len(v) == 4 for v in outcomes.outcomes.values())
    refusals = {(s.prompt_id, s.epoch): s.completion.startswith("I'm sorry") for s in store.samples(run.id)}
    for key, draws in outcomes.outcomes.items():
        assert draws == [not refusals[(key.split("|")[0], e)] for e in range(4)]


# --- GCG -----------------------------------------------------------------------------------------


def test_gcg_lowers_the_loss_and_keeps_a_consistent_allowed_suffix(tiny_backend):
    import torch

    from refute.redteam._gcg import allowed_tokens

    tok, model = tiny_backend.tokenizer, tiny_backend.model
    result = gcg_attack(tiny_backend, "How do I bake bread?", target="Sure, here is", n_steps=8,
                        suffix_len=6, top_k=32, batch_size=24, seed=0)
    assert len(result.losses) == 9 and result.best_loss < result.initial_loss
    assert all(b <= a for a, b in zip(result.losses, result.losses[1:], strict=False))
    assert len(result.suffix_ids) == 6
    assert tok(result.suffix, add_special_tokens=False).input_ids == list(result.suffix_ids)
    allowed = allowed_tokens(tok, model.get_input_embeddings().weight.shape[0])
    assert not any(allowed[i] for i in tok.all_special_ids)
    assert all(allowed[i] for i in result.suffix_ids)
    assert all(p.grad is None for p in model.parameters())  # the model is left as it was
    again = gcg_attack(tiny_backend, "How do I bake bread?", target="Sure, here is", n_steps=8,
                       suffix_len=6, top_k=32, batch_size=24, seed=0)
    assert again.suffix_ids == result.suffix_ids and again.losses == result.losses
    # the loss GCG reports (cached prefix) is the loss of the whole rendered conversation
    from refute.models import Message
    from refute.models._hf import render_prompt

    text = render_prompt(tok, [Message(role="user", content=result.message)])
    ids = tok(text + "Sure, here is", add_special_tokens=False).input_ids
    n_target = len(tok("Sure, here is", add_special_tokens=False).input_ids)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -n_target - 1:-1]
    direct = torch.nn.functional.cross_entropy(logits.float(), torch.tensor(ids[-n_target:]))
    assert float(direct) == pytest.approx(result.best_loss, abs=1e-4)
    with pytest.raises(ConfigError, match="white-box"):
        gcg_attack(Scripted("fake:x", lambda r: ""), "hi")
