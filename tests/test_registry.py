"""The one plug-in registry: duplicates, signature checks, unknown names, entry-point plug-ins."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

import refute.registry as reg
from refute.datasets import Record
from refute.errors import ConfigError, ScorerError
from refute.registry import Registry
from refute.scorers import ScoreInput, get_scorer, list_scorers, meaning_of

PLUGIN_DIR = Path(__file__).parent / "plugin_example"


@pytest.fixture()
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Registrations and loaded plug-ins made by the test are forgotten after it."""
    for r in list(reg._REGISTRIES.values()):
        monkeypatch.setattr(r, "_entries", dict(r._entries))
    monkeypatch.setattr(reg, "_loaded", set())
    monkeypatch.setattr(reg, "_complete", False)
    yield
    for name in [m for m in sys.modules if m == "plugin_example" or m.startswith("plugin_example.")]:
        del sys.modules[name]


def _install(monkeypatch: pytest.MonkeyPatch, *values: str) -> None:
    """As if a package declaring these ``refute`` entry points were installed next to refute."""
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    real = reg.entry_points
    fake = [EntryPoint(name=v.rsplit(".", 1)[-1], value=v, group=reg.ENTRY_POINT_GROUP) for v in values]
    monkeypatch.setattr(reg, "entry_points", lambda group: [*real(group=group), *fake])


# --- the rules, on a registry of its own ---------------------------------------------------------


def first_tool() -> str:
    return "first"


def second_tool() -> str:
    return "second"


def test_a_name_registered_twice_is_an_error_naming_both_places():
    tools = Registry("tool")
    tools.register("x", first_tool)
    with pytest.raises(ConfigError) as info:
        tools.register("x", second_tool)
    message = str(info.value)
    assert "tool name 'x' is registered twice" in message
    assert "test_registry.first_tool" in message and "test_registry.second_tool" in message
    assert message.count("test_registry.py:") == 2  # file and line of each
    assert tools.build("x") == "first"  # the first registration stands
    tools.register("x", first_tool)  # the same function again (a module reloaded) is no duplicate


def test_arguments_are_checked_against_the_signature_before_the_factory_runs():
    calls: list[int] = []

    def scaled(n: int, *, scale: float = 1.0) -> float:
        calls.append(n)
        return n * scale

    tools = Registry("tool")
    tools.register("scaled", scaled)
    with pytest.raises(ConfigError, match=r"tool 'scaled': bad arguments .*unknown argument\(s\) m; "
                                          r"it accepts: n, scale"):
        tools.build("scaled", m=1)
    with pytest.raises(ConfigError, match=r"needs argument\(s\): n"):
        tools.build("scaled")
    assert calls == []  # the factory never ran on bad arguments
    assert tools.build("scaled", n=2, scale=0.5) == 1.0


def test_a_type_error_inside_a_factory_propagates_as_the_bug_it_is():
    def buggy(n: int = 1) -> int:
        return len(n)  # type: ignore[arg-type]  # a bug: TypeError inside the factory

    tools = Registry("tool")
    tools.register("buggy", buggy)
    with pytest.raises(TypeError, match="has no len"):  # not turned into "bad arguments"
        tools.build("buggy", n=3)


def test_an_unknown_name_lists_the_known_ones_and_suggests_the_closest():
    with pytest.raises(ScorerError) as info:
        get_scorer("refusl")
    message = str(info.value)
    assert "unknown scorer 'refusl' (did you mean 'refusal'?)" in message
    assert "refusal_patterns" in message and "strongreject" in message and "probe" in message


# --- plug-ins through the ``refute`` entry-point group --------------------------------------------


def test_the_example_plugin_package_declares_its_module_as_a_refute_entry_point():
    declared = tomllib.loads((PLUGIN_DIR / "pyproject.toml").read_text())["project"]["entry-points"]["refute"]
    assert declared == {"example": "plugin_example.scorers"}
    assert (PLUGIN_DIR / "plugin_example" / "scorers.py").is_file()


def test_a_plugin_scorer_loads_through_the_entry_point_group_on_first_lookup(isolated, monkeypatch):
    assert "plugin_example" not in sys.modules
    _install(monkeypatch, "plugin_example.scorers")
    assert "plugin_example.scorers" not in sys.modules  # nothing loads before a name is missing
    shouting = get_scorer("example_plugin_scorer", min_letters=2)
    item = ScoreInput(record=Record(id="r", prompt="p"), messages=[], completion="NO WAY")
    assert shouting.score(item).value == 1.0
    assert meaning_of("example_plugin_scorer").outcome(1.0) == "shouting"
    assert meaning_of("example_plugin_scorer").outcome(0.0) == "calm"
    assert "example_plugin_scorer" in list_scorers()
    with pytest.raises(ScorerError, match="bad arguments"):  # a plug-in is checked like the built-ins
        get_scorer("example_plugin_scorer", loudness=11)


def test_a_plugin_that_registers_a_taken_name_fails_loudly(isolated, monkeypatch):
    _install(monkeypatch, "plugin_example.duplicate")
    with pytest.raises(ConfigError) as info:
        get_scorer("example_plugin_scorer")  # missing, so the plug-ins load, and the duplicate raises
    message = str(info.value)
    assert "refute plug-in 'duplicate' (plugin_example.duplicate)" in message
    assert "scorer name 'refusal' is registered twice" in message
    assert "refute.scorers._refusal_scorer.refusal" in message and "plugin_example.duplicate.refusal_again" in message
    assert reg.registry("scorer").get("refusal").factory.__module__ == "refute.scorers._refusal_scorer"
    with pytest.raises(ConfigError, match="registered twice"):  # still broken on the next lookup
        list_scorers()


def test_the_engine_finds_attack_solvers_only_through_entry_points():
    """The engine never imports `refute.redteam`: with the entry points gone, 'pair' is unknown."""
    code = (
        "import sys, refute.registry as r\n"
        "from refute.engine import get_solver\n"
        "assert 'refute.redteam' not in sys.modules\n"
        "get_solver('crescendo', turns=2)\n"  # loads refute.redteam through its entry point
        "assert 'refute.redteam' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    cut = ("import refute.registry as r\n"
           "r.entry_points = lambda group: []\n"
           "from refute.engine import get_solver\n"
           "get_solver('pair')\n")
    result = subprocess.run([sys.executable, "-c", cut], capture_output=True, text=True)
    assert result.returncode != 0
    assert "unknown solver 'pair'" in result.stderr and "pip install -e ." in result.stderr
