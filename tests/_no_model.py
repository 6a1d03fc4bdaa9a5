"""Make loading or preparing a model fail a test, wherever refute calls it from.

Modules import ``load_model`` and ``prepare_embedded`` at their top, so patching the name in
`refute.models` alone would miss the copies the command line, the engine and the study runner
hold: every module of refute bound to either function is patched.
"""

from __future__ import annotations

import sys

import pytest

import refute.cli  # imports every layer, so every binding exists before patching
import refute.demo
import refute.models


def forbid_model_loading(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """Any call of ``load_model`` or ``prepare_embedded`` raises ``AssertionError(message)``."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(message)

    originals = {"load_model": refute.models.load_model, "prepare_embedded": refute.models.prepare_embedded}
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "refute" or name.startswith("refute.")):
            continue
        for attr, original in originals.items():
            if getattr(module, attr, None) is original:
                monkeypatch.setattr(module, attr, refuse)
