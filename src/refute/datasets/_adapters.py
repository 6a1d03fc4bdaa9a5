"""Adapters from published benchmark formats to :class:`Record` fields.

Each adapter knows one public format by its column names, exactly as published, and turns one
row into the keyword arguments of a ``Record``. Columns an adapter does not know go to
``metadata``, so nothing in the source file is lost. A loader picks an adapter by name, or detects
one when a file's header holds all of an adapter's published columns.

Formats (column names as their authors publish them):

- ``harmbench``: HarmBench behaviors CSV (Mazeika et al., 2024).
- ``advbench``: AdvBench harmful behaviors (Zou et al., 2023). Its ``target`` is the affirmative
  reply prefix an attack optimizes towards, not an answer; it is kept as ``metadata.target_prefix``.
- ``jailbreakbench``: JBB-Behaviors (Chao et al., 2024); ``Target`` is also an affirmative prefix.
- ``strongreject``: StrongREJECT forbidden prompts (Souly et al., 2024).
- ``xstest``: XSTest v2 prompts (Röttger et al., 2024); contrast prompts are the unsafe ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ADAPTER_NAMES", "Adapter", "RowError", "detect_adapter", "get_adapter"]


class RowError(Exception):
    """A row lacks a value an adapter needs. The loader adds the file and line."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Adapter:
    """One published format: its columns and how a row of it becomes ``Record`` fields."""

    name: str
    description: str
    columns: tuple[str, ...]
    """Every column of the published format; a header holding all of them selects this adapter."""
    required: tuple[str, ...]
    """Columns that must be present when the adapter is named explicitly."""
    convert: Callable[[Mapping[str, Any]], dict[str, Any]]

    def apply(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """``Record`` keyword arguments for ``row``; unknown columns are added to metadata."""
        fields = self.convert(row)
        extra = {k: v for k, v in row.items() if k not in self.columns and not _blank(v)}
        if extra:
            fields["metadata"] = {**extra, **fields.get("metadata", {})}
        return fields


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(row: Mapping[str, Any], column: str) -> str | None:
    """The cell as a string, or None when absent or blank."""
    value = row.get(column)
    if _blank(value):
        return None
    return value if isinstance(value, str) else str(value)


def _need(row: Mapping[str, Any], column: str) -> str:
    value = _text(row, column)
    if value is None:
        raise RowError(f"empty value in required column '{column}'", field=column)
    return value


def _optional(**pairs: str | None) -> dict[str, str]:
    return {k: v for k, v in pairs.items() if v is not None}


def _harmbench(row: Mapping[str, Any]) -> dict[str, Any]:
    behavior = _need(row, "Behavior")
    context = _text(row, "ContextString")
    tags = [t.strip() for t in (_text(row, "Tags") or "").split(",") if t.strip()]
    fields: dict[str, Any] = {
        "prompt": f"{context.strip()}\n\n{behavior}" if context else behavior,
        "metadata": {
            **_optional(functional_category=_text(row, "FunctionalCategory")),
            "tags": tags,
            "has_context": context is not None,
        },
    }
    fields.update(_optional(id=_text(row, "BehaviorID"), category=_text(row, "SemanticCategory")))
    return fields


def _advbench(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "prompt": _need(row, "goal"),
        "metadata": _optional(target_prefix=_text(row, "target")),
    }


def _jailbreakbench(row: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "prompt": _need(row, "Goal"),
        "metadata": _optional(
            target_prefix=_text(row, "Target"),
            behavior=_text(row, "Behavior"),
            source=_text(row, "Source"),
        ),
    }
    fields.update(_optional(id=_text(row, "Index"), category=_text(row, "Category")))
    return fields


def _strongreject(row: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "prompt": _need(row, "forbidden_prompt"),
        "metadata": _optional(source=_text(row, "source")),
    }
    fields.update(_optional(category=_text(row, "category")))
    return fields


def _xstest(row: Mapping[str, Any]) -> dict[str, Any]:
    kind = _need(row, "type")
    derived = "unsafe" if kind.startswith("contrast_") else "safe"
    given = _text(row, "label")
    if given is not None and given.strip().lower() != derived:
        raise RowError(
            f"label '{given}' contradicts type '{kind}' (contrast_* prompts are unsafe, others safe)",
            field="label",
        )
    fields: dict[str, Any] = {
        "prompt": _need(row, "prompt"),
        "category": kind,
        "metadata": {
            "label": derived,
            **_optional(focus=_text(row, "focus"), note=_text(row, "note")),
        },
    }
    fields.update(_optional(id=_text(row, "id")))
    return fields


_ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        Adapter(
            "harmbench",
            "HarmBench behaviors CSV; category = SemanticCategory, context prepended",
            ("Behavior", "FunctionalCategory", "SemanticCategory", "Tags", "ContextString", "BehaviorID"),
            ("Behavior",),
            _harmbench,
        ),
        Adapter(
            "advbench",
            "AdvBench harmful behaviors (goal, target); target kept as metadata.target_prefix",
            ("goal", "target"),
            ("goal",),
            _advbench,
        ),
        Adapter(
            "jailbreakbench",
            "JailbreakBench JBB-Behaviors; Target kept as metadata.target_prefix",
            ("Index", "Goal", "Target", "Behavior", "Category", "Source"),
            ("Goal",),
            _jailbreakbench,
        ),
        Adapter(
            "strongreject",
            "StrongREJECT forbidden prompts (category, source, forbidden_prompt)",
            ("category", "source", "forbidden_prompt"),
            ("forbidden_prompt",),
            _strongreject,
        ),
        Adapter(
            "xstest",
            "XSTest v2 prompts; category = type, metadata.label = safe/unsafe",
            ("id", "prompt", "type", "label", "focus", "note"),
            ("prompt", "type"),
            _xstest,
        ),
    )
}

ADAPTER_NAMES: tuple[str, ...] = tuple(_ADAPTERS)
"""Names accepted by ``load_dataset(..., adapter=NAME)``."""


def get_adapter(name: str) -> Adapter | None:
    """The adapter called ``name``, or None when there is none."""
    return _ADAPTERS.get(name)


def detect_adapter(header: Iterable[str]) -> list[Adapter]:
    """Adapters whose published columns all appear in ``header`` (case-sensitive)."""
    present = set(header)
    return [a for a in _ADAPTERS.values() if set(a.columns) <= present]
