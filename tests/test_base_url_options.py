"""``--base-url`` repeats on `refute run`, `refute agent run` and `refute serve`: two values reach the
model loader as a list (one openai backend over both servers), one value stays text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from refute.cli import _common, _serve, app
from refute.cli._common import endpoint_urls
from refute.errors import ConfigError
from refute.models import load_model

A, B = "http://127.0.0.1:18001/v1", "http://127.0.0.1:18002/v1"


class _Loaded(Exception):
    pass


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Each load_model call of the CLI: its options and the endpoints of the backend it made; the
    command stops right after (nothing is sent to the servers)."""
    seen: list[dict[str, Any]] = []

    def fake(spec: str, **options: Any) -> Any:
        backend = load_model(spec, **options)
        seen.append({"spec": spec, **options, "endpoints": [e.url for e in backend._endpoints]})  # type: ignore[attr-defined]
        backend.close()
        raise ConfigError("stopped by the test after loading")

    monkeypatch.setattr(_common, "load_model", fake)
    monkeypatch.setattr(_serve, "load_model", fake)
    return seen


def _invoke(args: list[str]) -> Any:
    result = CliRunner().invoke(app, args)
    assert "stopped by the test after loading" in result.output, result.output
    return result


def test_endpoint_urls_keeps_one_value_as_text_and_several_as_a_list() -> None:
    assert endpoint_urls(None) is None and endpoint_urls([]) is None
    assert endpoint_urls([A]) == A
    assert endpoint_urls(["endpoints.yaml"]) == "endpoints.yaml"
    assert endpoint_urls([A, B]) == [A, B]


def test_run_sends_two_base_urls_to_one_backend(loads: list[dict[str, Any]], tmp_path: Path) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text(json.dumps({"id": "p0", "prompt": "hi"}) + "\n")
    _invoke(["run", "-m", "openai:m", "-d", str(data), "--base-url", A, "--base-url", B, "--concurrency", "3",
             "--store", str(tmp_path / "s.db"), "--no-progress"])
    (load,) = loads
    assert load["base_url"] == [A, B] and load["concurrency"] == 3 and load["endpoints"] == [A, B]


def test_agent_run_sends_two_base_urls_to_one_backend(loads: list[dict[str, Any]], tmp_path: Path) -> None:
    _invoke(["agent", "run", "-m", "openai:m", "--base-url", A, "--base-url", B, "--sandbox", "bwrap",
             "--limit", "1", "--epochs", "1", "--store", str(tmp_path / "s.db"), "--no-progress"])
    (load,) = loads
    assert load["base_url"] == [A, B] and load["endpoints"] == [A, B]


def test_agent_run_keeps_a_single_base_url_as_text(loads: list[dict[str, Any]], tmp_path: Path) -> None:
    _invoke(["agent", "run", "-m", "openai:m", "--base-url", A, "--sandbox", "bwrap", "--limit", "1",
             "--store", str(tmp_path / "s.db"), "--no-progress"])
    assert loads[0]["base_url"] == A and loads[0]["endpoints"] == [A]


def test_serve_sends_two_base_urls_to_one_backend(loads: list[dict[str, Any]], tmp_path: Path) -> None:
    _invoke(["serve", "openai:m", "--base-url", A, "--base-url", B, "--concurrency", "5",
             "--store", str(tmp_path / "s.db")])
    (load,) = loads
    assert load["base_url"] == [A, B] and load["concurrency"] == 5 and load["endpoints"] == [A, B]


def test_serve_keeps_a_single_base_url_as_text_and_reads_an_endpoints_file(
        loads: list[dict[str, Any]], tmp_path: Path) -> None:
    _invoke(["serve", "openai:m", "--base-url", A, "--store", str(tmp_path / "s.db")])
    file = tmp_path / "endpoints.yaml"
    file.write_text(f"endpoints:\n  - {A}\n  - {{url: {B}, concurrency: 2}}\n")
    _invoke(["serve", "openai:m", "--base-url", str(file), "--store", str(tmp_path / "s.db")])
    assert loads[0]["base_url"] == A and loads[0]["endpoints"] == [A]
    assert loads[1]["base_url"] == str(file) and loads[1]["endpoints"] == [A, B]


def test_serve_refuses_base_urls_for_a_local_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "default", "--base-url", A, "--base-url", B,
                                      "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 2 and "--base-url only applies to openai:MODEL" in result.output
