"""The debate experiment: verdict parsing, the seeded design, accuracy arithmetic, and a run end to end
through the engine with a fake model whose every answer follows a rule computed here by hand."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from refute.errors import ConfigError, DatasetError
from refute.gaming import Context, parse_settings, run_experiment
from refute.gaming._debate import (
    CONDITIONS,
    DEBATER_SYSTEM,
    Assignment,
    Question,
    assign_sides,
    load_questions,
    parse_verdict,
    summarise,
)
from refute.models import Completion, GenerateRequest, ModelInfo
from refute.scorers import normalize
from refute.stats import paired_difference, rate, unpaired_difference
from refute.store import SampleRecord, Store

# --- verdicts -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "want"), [
    ("A", "A"), ("B.", "B"), ("(A)", "A"), ("**B**", "B"), ("A) Canberra", "A"), ("B is correct", "B"),
    ("The answer is B.", "B"), ("Answer: A", "A"), ("  B\nbecause", "B"), ("Option B", "B"),
    ("Canberra", "A"), ("sydney.", "B"),  # the text of exactly one option
    ("a lot", None), ("I cannot tell", None), ("A consultant says so", None), ("AB", None), ("", None),
])
def test_a_verdict_is_the_letter_the_judge_commits_to(reply: str, want: str | None):
    assert parse_verdict(reply, ("Canberra", "Sydney")) == want


def test_an_option_text_counts_only_when_options_are_given_and_exactly_one_matches():
    assert parse_verdict("Canberra") is None
    assert parse_verdict("yes", ("yes", "Yes!")) is None


# --- the design ---------------------------------------------------------------------------------------


def _questions(n: int) -> list[Question]:
    return [Question(id=f"q{i}", question=f"question {i}?", correct=f"right{i}", wrong=f"wrong{i}") for i in range(n)]


@pytest.mark.parametrize("n", [2, 7, 8, 48])
def test_positions_and_consultant_sides_are_balanced_and_not_confounded(n: int):
    plan = assign_sides(_questions(n), seed=3)
    at_a = [a for a in plan if a.correct_letter == "A"]
    at_b = [a for a in plan if a.correct_letter == "B"]
    assert len(at_a) == (n + 1) // 2
    honest_a = sum(a.consultant_side == "correct" for a in at_a)
    honest_b = sum(a.consultant_side == "correct" for a in at_b)
    assert honest_a == (len(at_a) + 1) // 2 and honest_b == len(at_b) // 2  # halves round opposite ways
    assert abs(2 * (honest_a + honest_b) - n) <= 1


def test_the_design_is_seeded():
    qs = _questions(48)
    key = [(a.correct_letter, a.consultant_side) for a in assign_sides(qs, seed=0)]
    assert key == [(a.correct_letter, a.consultant_side) for a in assign_sides(qs, seed=0)]
    assert key != [(a.correct_letter, a.consultant_side) for a in assign_sides(qs, seed=1)]


def test_an_assignment_maps_letters_and_sides_both_ways():
    a = Assignment(Question(id="q", question="?", correct="yes", wrong="no"), "B", "wrong")
    assert (a.option("A"), a.option("B")) == ("no", "yes")
    assert a.letter("correct") == "B" and a.letter("wrong") == "A" and a.side("A") == "wrong"


def test_the_shipped_questions_load():
    qs = load_questions()
    assert 40 <= len(qs) <= 60 and len({q.id for q in qs}) == len(qs)
    cats = [q.category for q in qs]
    assert set(cats) == {"arithmetic", "facts", "logic"}
    assert set(cats[:6]) == set(cats)  # interleaved, so a limit keeps the mix


def test_a_bad_questions_file_names_its_line(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "?", "correct": "1", "wrong": "2"}\n'
                    '{"id": "b", "question": "?", "correct": "1", "wrong": " 1."}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"q.jsonl:2: .*different answers"):
        load_questions(path)


# --- accuracy arithmetic ------------------------------------------------------------------------------


def test_accuracies_by_hand():
    qs = _questions(4)
    plan = [Assignment(qs[0], "A", "correct"), Assignment(qs[1], "A", "wrong"),
            Assignment(qs[2], "B", "correct"), Assignment(qs[3], "B", "wrong")]
    verdicts = {"none": {"q0": "A", "q1": "B", "q2": "unparseable", "q3": "A"},  # right once: 1/4
                "consultancy": {"q0": "A", "q1": "B", "q2": "B", "q3": "A"},  # follows the consultant: 2/4
                "debate": {"q0": "A", "q1": "A", "q2": "B", "q3": "failed"}}  # 3/3, q3 missing
    figures, tables, findings = summarise(plan, verdicts)  # type: ignore[arg-type]
    assert figures["none.accuracy"].value == 0.25 and figures["none.accuracy"].n == 4
    assert figures["consultancy.accuracy"].value == 0.5
    assert figures["debate.accuracy"].value == 1.0 and figures["debate.accuracy"].n == 3
    assert figures["consultancy.accuracy_consultant_correct"].value == 1.0
    assert figures["consultancy.accuracy_consultant_wrong"].value == 0.0
    assert figures["none.answers_a"].value == pytest.approx(2 / 3) and figures["none.answers_a"].n == 3
    d = figures["debate_minus_none"]
    assert d.value == pytest.approx(1 - 1 / 3) and d.n == 3  # paired on the 3 questions both judged
    assert figures["debate_minus_consultancy"].value == pytest.approx(1 - 2 / 3)
    assert figures["consultancy_minus_none"].value == pytest.approx(0.25) and figures["consultancy_minus_none"].n == 4
    rows = {r[0]: r for r in tables[0].rows}
    assert rows["none"][2:5] == ["1 / 4", "1", "0"] and rows["debate"][2:5] == ["3 / 3", "0", "1"]
    assert any("1 of 12 verdicts were unparseable" in f for f in findings)


# --- end to end ---------------------------------------------------------------------------------------


class Scripted:
    """Debaters give a reason ("because") only for the correct answer; the judge alone says A, except
    "I cannot tell" on questions marked UNSURE; with a consultant it names the consultant's answer; in a
    debate it picks the debater who gave a reason."""

    info = ModelInfo(spec="scripted", backend="fake")
    preferred_batch_size = 5

    def __init__(self, correct: set[str]) -> None:
        self.correct = correct
        self.sent: list[GenerateRequest] = []

    def reply(self, request: GenerateRequest) -> str:
        system, user = request.messages[0].content, request.messages[-1].content
        if system == DEBATER_SYSTEM:
            claim = re.search(r"You argue that the answer is: (\S+)", user).group(1)  # type: ignore[union-attr]
            return f"It is {claim}, because it follows." if claim in self.correct else f"It is {claim}."
        if "Debater A" in user:
            first = re.search(r"Debater A[^:]*: (.*)", user).group(1)  # type: ignore[union-attr]
            return "A" if "because" in first else "B"
        if m := re.search(r"asked to argue for ([AB])\)", user):
            return f"The answer is {m.group(1)}."
        return "I cannot tell" if "UNSURE" in user else "A"

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        for i, r in enumerate(requests):
            self.sent.append(r)
            yield i, Completion(text=self.reply(r), output_tokens=3)

    def close(self) -> None:
        pass


def _write_questions(path: Path, n: int) -> list[Question]:
    qs = [Question(id=f"q{i}", question=f"Question {i}{' UNSURE' if i in (1, 2) else ''}?",
                   correct=f"right{i}", wrong=f"wrong{i}", category="even" if i % 2 == 0 else "odd")
          for i in range(n)]
    path.write_text("".join(q.model_dump_json() + "\n" for q in qs), encoding="utf-8")
    return qs


def test_the_experiment_end_to_end_matches_the_rule(tmp_path: Path):
    qs = _write_questions(tmp_path / "q.jsonl", 10)
    fake = Scripted({q.correct for q in qs})
    loaded: list[str] = []

    def models(spec: str) -> Scripted:
        loaded.append(spec)
        return fake

    store = Store(tmp_path / "refute.db")
    settings = {"questions": str(tmp_path / "q.jsonl"), "limit": 8, "seed": 5, "max_tokens": 16}
    result = run_experiment("debate", settings, Context(store=store, out_dir=tmp_path / "out", models=models,
                                                        progress=False, say=lambda _: None))
    assert sorted(set(loaded)) == ["default"]
    plan = assign_sides(qs[:8], seed=5)
    ids = [a.id for a in plan]
    # by hand: alone, right when the correct answer is at A (and the question is not UNSURE)
    none = np.array([float(a.correct_letter == "A" and "UNSURE" not in a.question.question) for a in plan])
    cons = np.array([float(a.consultant_side == "correct") for a in plan])
    debate = np.ones(8)
    f = result.figures
    for key, want in (("none", none), ("consultancy", cons), ("debate", debate)):
        e = rate(want)
        assert (f[f"{key}.accuracy"].value, f[f"{key}.accuracy"].low, f[f"{key}.accuracy"].high) == \
            (e.value, min(e.low, e.value), max(e.high, e.value))
    for key, a, b in (("debate_minus_none", none, debate), ("consultancy_minus_none", none, cons),
                      ("debate_minus_consultancy", cons, debate)):
        c = paired_difference(a, b, ids, rng=5)
        assert (f[key].value, f[key].low, f[key].high, f[key].n) == (c.difference, c.low, c.high, 8)
    assert f["none.answers_a"].value == 1.0 and f["none.answers_a"].n == 8 - 2
    assert f["consultancy.accuracy_consultant_correct"].value == 1.0
    assert f["consultancy.accuracy_consultant_wrong"].value == 0.0
    honest = cons.astype(bool)
    gap = unpaired_difference(cons[~honest], None, cons[honest], None)
    assert f["consultancy.correct_minus_wrong_consultant"].value == gap.difference == 1.0
    assert result.tables[0].rows[0][3] == "2"  # two unparseable verdicts alone
    assert any("persuaded by the wrong side" in s for s in result.findings)

    # every call is stored: 2 arguments and 3 verdicts per question, each sent to the model once
    runs = result.runs
    assert set(runs) == {"arguments.round1", "judge"}
    args, judged = store.samples(runs["arguments.round1"]), store.samples(runs["judge"])
    assert len(args) == 16 and len(judged) == 24 and len(fake.sent) == 40
    assert all(s.error is None for s in args + judged)
    by_question = {i: sorted(s.category for s in judged if s.prompt_id.startswith(f"{i}:")) for i in ids}
    assert all(v == sorted(CONDITIONS) for v in by_question.values())  # every question in every condition
    verdict_rows = [json.loads(x) for x in (tmp_path / "out" / "verdicts.jsonl").read_text().splitlines()]
    assert [r["id"] for r in verdict_rows] == ids
    assert [r["correct_letter"] for r in verdict_rows] == [a.correct_letter for a in plan]
    assert (tmp_path / "out" / "result.json").is_file()

    # run again: every request comes from the store's cache and the figures are the same
    again = Scripted(fake.correct)
    second = run_experiment("debate", settings, Context(store=store, out_dir=tmp_path / "out2",
                                                        models=lambda _: again, progress=False, say=lambda _: None))
    assert again.sent == [] and second.figures == result.figures


def _asked(sample: SampleRecord) -> str:
    return next(m["content"] for m in reversed(sample.messages) if m["role"] == "user")


def test_later_rounds_answer_the_opponent_and_the_consultant_speaks_as_often(tmp_path: Path):
    qs = _write_questions(tmp_path / "q.jsonl", 4)
    fake = Scripted({q.correct for q in qs})
    store = Store(tmp_path / "refute.db")
    result = run_experiment("debate", {"questions": str(tmp_path / "q.jsonl"), "rounds": 2, "judge": "other"},
                            Context(store=store, out_dir=tmp_path / "out", models=lambda _: fake, progress=False,
                                    say=lambda _: None))
    second = {s.prompt_id: s for s in store.samples(result.runs["arguments.round2"])}
    assert len(second) == 12  # two debaters and the consultant per question
    debater = _asked(second["q0:correct"])
    assert "Round 1, your opponent: It is wrong0." in debater and "Round 1, you: It is right0, because" in debater
    assert "opponent" not in _asked(second["q0:consultant"])
    judge = {s.prompt_id: _asked(s) for s in store.samples(result.runs["judge"])}
    assert "Debater A (round 2)" in judge["q0:debate"] and "Consultant (round 2)" in judge["q0:consultancy"]
    assert result.figures["debate.accuracy"].value == 1.0
    assert result.models == ["default", "other"]


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="limit"):
        parse_settings("debate", {"limit": 1})
    with pytest.raises(ConfigError, match="colour"):
        parse_settings("debate", {"colour": "red"})
    assert parse_settings("debate", {}).model_dump() == {
        "debaters": "default", "judge": "default", "questions": None, "limit": None, "rounds": 1, "max_tokens": 64,
        "temperature": 0.0, "seed": 0}


@pytest.mark.slow
def test_the_default_model_argues_its_assigned_side_and_its_verdicts_parse(default_backend, tmp_path: Path):
    """Real behaviour: every debater names the answer it was given, the wrong one too, and every verdict
    of the default judge is a letter the parser reads."""
    store = Store(tmp_path / "refute.db")
    result = run_experiment("debate", {"limit": 3, "max_tokens": 24},
                            Context(store=store, out_dir=tmp_path, models=lambda _: default_backend, progress=False,
                                    say=lambda _: None))
    questions = {q.id: q for q in load_questions()}
    for s in store.samples(result.runs["arguments.round1"]):
        qid, side = s.prompt_id.split(":")
        claim = questions[qid].correct if side == "correct" else questions[qid].wrong
        assert normalize(claim) in normalize(s.completion or ""), (s.prompt_id, s.completion)
    rows = [json.loads(x) for x in (tmp_path / "verdicts.jsonl").read_text().splitlines()]
    assert all(r[c] in ("A", "B") for r in rows for c in CONDITIONS), rows
