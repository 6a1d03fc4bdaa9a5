"""The layers contract (pyproject.toml, checked by import-linter): it holds, and it can fail."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports is missing: pip install -e '.[test]' (it is in the test extra)")
    env = None if pythonpath is None else {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([exe, "--no-cache", "--no-logo"], cwd=cwd, env=env, capture_output=True, text=True)


def test_every_package_imports_only_the_layers_below_it():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path):
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "refute", src / "refute", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    task = src / "refute" / "engine" / "_task.py"
    task.write_text(task.read_text() + "\nimport refute.report  # an engine module reaching up\n")
    result = _lint_imports(tmp_path, pythonpath=src)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "refute.engine._task -> refute.report" in result.stdout


def _inner_refute_imports(path: Path) -> list[str]:
    """``file:line`` of each ``from refute...`` / ``import refute...`` inside a function or class
    whose line does not say ``# deferred: <reason>``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for scope in ast.walk(tree):
        if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        for node in ast.walk(scope):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            deferred = "# deferred:" in lines[node.lineno - 1]
            if any(n == "refute" or n.startswith("refute.") for n in names) and not deferred:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return sorted(set(found))


def test_refute_imports_sit_at_the_top_unless_they_defer_a_heavy_dependency():
    """No cycle needs a function-level import any more; one that defers a heavy optional
    dependency says so with ``# deferred: <reason>`` on its line."""
    found = [hit for f in sorted((ROOT / "src" / "refute").rglob("*.py")) for hit in _inner_refute_imports(f)]
    assert found == [], "function-level refute imports (hoist them, or mark '# deferred: why'): " + ", ".join(found)
