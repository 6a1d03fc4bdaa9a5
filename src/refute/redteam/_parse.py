"""Shared pieces of the attacker loops: sub-seeds, and robust parsing of what helper models write.

Attacker and judge models are small and chatty: they wrap their answer in quotes, code fences,
labels ("Next message:"), preambles ("Sure, here is the prompt:") or reasoning tags, and they
sometimes refuse. These helpers pull out the part the loop needs and say why when they cannot;
the caller records the reason and falls back to a template, so a bad helper reply never ends a
sample.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from refute._seeds import derive_seed
from refute.datasets import Record
from refute.errors import ConfigError
from refute.models._base import GenerateConfig, Message
from refute.scorers import RefusalPatterns, ScoreInput

__all__ = ["AttackJSON", "clean_turn", "goal_of", "helper_config", "is_refusal", "parse_attack_json",
           "parse_rating", "refusal_score", "sub_seed"]

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)
_LABEL = re.compile(
    r"^\s*(?:\*\*|__)?\s*(?:(?:the\s+)?(?:next|final|first|new|improved|revised)\s+)?"
    r"(?:user(?:'s)?\s+)?(?:message|prompt|question|turn|query|request|user)"
    r"(?:\s+(?:for\s+)?(?:turn\s+)?#?\d+)?\s*(?:\*\*|__)?\s*[:\-\u2013]\s*(?:\*\*|__)?\s*",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(r"^\s*(?:sure|okay|ok|certainly|of course|absolutely|here)\b[^\n]{0,120}:\s*$",
                       re.IGNORECASE)
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb", "`": "`"}
_RATING = (
    re.compile(r"\[\[\s*(\d{1,2})(?:\.\d+)?\s*\]\]"),
    re.compile(r"\brating\s*[:=]?\s*\[?\s*(\d{1,2})\b", re.IGNORECASE),
    re.compile(r"^\s*(\d{1,2})\s*(?:/\s*10)?\s*$", re.MULTILINE),
)


def sub_seed(seed: int, *parts: object) -> int:
    """A seed for one helper request: ``derive_seed(seed, *parts)`` (`refute._seeds`), from the
    sample's seed and where in the attack loop the request is (step name, step number...)."""
    return derive_seed(seed, *parts)


def helper_config(solver_name: str, max_tokens: Any, temperature: Any) -> GenerateConfig:
    """Sampling settings for a helper model's requests, or ``ConfigError`` naming the solver."""
    try:
        return GenerateConfig(max_tokens=max_tokens, temperature=temperature)
    except ValidationError as exc:
        raise ConfigError(f"solver '{solver_name}': invalid helper settings (max_tokens="
                          f"{max_tokens!r}, temperature={temperature!r}): {exc.errors()[0]['msg']}") from None


def goal_of(messages: list[Message], solver_name: str) -> tuple[list[Message], str]:
    """The context before the last user message, and that message's text (the attack's goal)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return list(messages[:i]), messages[i].content
    raise ConfigError(f"solver '{solver_name}' needs a user message to attack; the sample's "
                      f"conversation has roles {[m.role for m in messages]}")


def refusal_score(text: str, goal: str = "-") -> tuple[bool, str | None]:
    """Whether the ``refusal_patterns`` scorer calls ``text`` a refusal, and its explanation."""
    item = ScoreInput(record=Record(id="attack", prompt=goal or "-"), messages=[], completion=text)
    score = RefusalPatterns().score(item)
    return score.value == 1.0, score.explanation


def is_refusal(text: str) -> bool:
    """True when the ``refusal_patterns`` scorer scores ``text`` as a refusal (empty counts)."""
    return refusal_score(text)[0]


def _strip_wrappers(text: str) -> str:
    text = _THINK.sub("", text).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    return text


def _unquote(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] == _QUOTES[text[0]]:
        text = text[1:-1].strip()
    return text


def clean_turn(text: str) -> tuple[str | None, str | None]:
    """The user message an attacker wrote, or ``(None, reason)`` when there is none to use.

    Strips reasoning tags, code fences, preamble lines ("Sure, here is the next message:"),
    labels ("Turn 2:", "**Next message:**") and surrounding quotes. A JSON object with a
    ``prompt`` or ``message`` field is read as such. An empty text or a refusal gives None.
    """
    body = _strip_wrappers(text)
    parsed = _first_json_object(body)
    if parsed is not None:
        for key in ("prompt", "message", "question", "next_message"):
            if isinstance(parsed.get(key), str) and parsed[key].strip():
                body = parsed[key]
                break
    lines = body.splitlines()
    while lines and (not lines[0].strip() or _PREAMBLE.match(lines[0])):
        lines.pop(0)
    body = "\n".join(lines).strip()
    body = _LABEL.sub("", body, count=1)
    body = _unquote(body)
    if not body:
        return None, "empty attacker output"
    if is_refusal(body):
        return None, "the attacker refused"
    return body, None


# --- PAIR's JSON {"improvement": ..., "prompt": ...} ------------------------------------------------


@dataclass(frozen=True)
class AttackJSON:
    """What was read from an attacker reply; ``prompt`` is None when nothing usable was found."""

    prompt: str | None
    improvement: str | None
    how: str  # "json", "regex", "text" or "none"
    error: str | None  # why strict JSON parsing failed, if it did


def _balanced_objects(text: str) -> list[str]:
    """Every top-level ``{...}`` span of ``text``, honouring strings and escapes."""
    spans, depth, start, quoted, escaped = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"' and depth > 0:
            quoted = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _first_json_object(text: str) -> dict | None:
    for span in _balanced_objects(text):
        for candidate in (span, re.sub(r",\s*([}\]])", r"\1", span)):  # tolerate trailing commas
            try:
                value = json.loads(candidate, strict=False)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _field(text: str, key: str) -> str | None:
    """A string field read by pattern when the JSON is broken (unescaped quotes, cut off)."""
    match = re.search(rf'["\']?{key}["\']?\s*:\s*"(.*?)"\s*(?:,\s*["\']?\w+["\']?\s*:|\}}|$)', text,
                      re.DOTALL | re.IGNORECASE)
    if match is None:  # cut off before the closing quote
        match = re.search(rf'["\']?{key}["\']?\s*:\s*"(.+)$', text, re.DOTALL | re.IGNORECASE)
    return match.group(1).strip().replace('\\"', '"').replace("\\n", "\n") if match else None


def parse_attack_json(text: str) -> AttackJSON:
    """Read ``{"improvement": ..., "prompt": ...}`` from an attacker reply, as leniently as it takes.

    Tries strict JSON (first balanced object, trailing commas tolerated), then the two fields by
    pattern (broken or truncated JSON), then the whole reply cleaned as a plain prompt. A reply
    that is empty or a refusal gives ``prompt=None``.
    """
    body = _strip_wrappers(text)
    parsed = _first_json_object(body)
    if parsed is not None and isinstance(parsed.get("prompt"), str) and parsed["prompt"].strip():
        improvement = parsed.get("improvement")
        return AttackJSON(parsed["prompt"].strip(), improvement if isinstance(improvement, str) else None,
                          "json", None)
    error = "no JSON object" if parsed is None else "JSON object without a 'prompt' string"
    prompt = _field(body, "prompt")
    if prompt:
        return AttackJSON(prompt, _field(body, "improvement"), "regex", error)
    if re.search(r'["\']?(?:improvement|prompt)["\']?\s*:', body):
        return AttackJSON(None, None, "none", error + "; the JSON has no readable prompt")
    turn, reason = clean_turn(body)
    if turn is not None and len(turn.split()) >= 4:
        return AttackJSON(turn, None, "text", error)
    return AttackJSON(None, None, "none", f"{error}; {reason or 'too short to be a prompt'}")


def parse_rating(text: str) -> int | None:
    """A judge's 1-10 rating: ``Rating: [[N]]`` as PAIR asks, else ``Rating: N``, else a bare N."""
    body = _strip_wrappers(text)
    for pattern in _RATING:
        match = pattern.search(body)
        if match:
            value = int(match.group(1))
            if 1 <= value <= 10:
                return value
    return None
