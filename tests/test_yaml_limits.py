"""Study and policy YAML is parsed in time linear in the file: aliases are bounded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import refute.study
from refute._yaml import SpecFileError, parse_yaml
from refute.study._spec import load_study, study_from_text

EXAMPLES = Path(refute.study.__file__).parent / "examples"


def _laughs(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": each level is a list of ``width`` aliases of the level below."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("what", ["study", "policy"])
def test_an_alias_bomb_is_refused_quickly_with_its_line(what):
    text = _laughs()
    assert len(text) < 500
    start = time.perf_counter()
    with pytest.raises(SpecFileError) as info:
        parse_yaml(text, "bomb.yaml", what=what)
    assert time.perf_counter() - start < 2.0  # 9**9 nodes expanded: unbounded code takes minutes
    message = str(info.value)
    assert message.startswith("bomb.yaml:") and info.value.line is not None
    assert "alias" in message and "write the values out" in message


def test_many_small_aliases_are_refused_at_the_first_one_over_the_limit():
    text = "x: &x 1\nys:\n" + "".join("  - *x\n" for _ in range(150))
    with pytest.raises(SpecFileError) as info:
        parse_yaml(text, "many.yaml", what="study")
    assert info.value.line == 3 + 100  # the 101st alias
    assert "aliases" in str(info.value)


def test_an_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(SpecFileError) as info:
        parse_yaml("a: &loop\n  b: *loop\n", "loop.yaml", what="policy")
    assert info.value.line == 2 and "inside" in str(info.value)


def test_deep_nesting_is_refused_not_a_recursion_error():
    text = "a:\n  b: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(SpecFileError) as info:
        parse_yaml(text, "deep.yaml", what="study")
    assert info.value.line == 2 and "nested" in str(info.value)


def test_ordinary_anchors_still_load():
    study = load_study(EXAMPLES / "refusal-study.yaml")  # reuses its safety prompt by anchor
    prompts = {r.id: r.system for r in study.spec.runs}
    assert prompts["lookalike-safety-prompt"] == prompts["harmful-safety-prompt"] is not None
    doc = parse_yaml("base: &b {x: 1, y: [1, 2]}\none: *b\ntwo: *b\n", "ok.yaml", what="study")
    assert doc.data == {"base": {"x": 1, "y": [1, 2]}, "one": {"x": 1, "y": [1, 2]},
                        "two": {"x": 1, "y": [1, 2]}}
    text = (EXAMPLES / "refusal-study.yaml").read_text()
    assert study_from_text(text, "s.yaml").sha256 == study.sha256


def test_duplicate_keys_in_an_aliased_mapping_are_reported_once():
    with pytest.raises(SpecFileError) as info:
        parse_yaml("base: &b {x: 1, x: 2}\none: *b\ntwo: *b\n", "dup.yaml", what="study")
    assert len(info.value.issues) == 1 and info.value.line == 1
