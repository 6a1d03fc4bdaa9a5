"""How an agent calls its tools: OpenAI-style tool calls for `openai:` models, and a text protocol
for local models, which have no tool-calling API.

The text protocol: the model replies with one tool call written as a tag, and nothing after it::

    <bash>
    ls -la
    </bash>

Tags: ``<bash>COMMAND</bash>``, ``<python>CODE</python>``, ``<read_file>PATH</read_file>``,
``<write_file path="PATH">CONTENT</write_file>``, ``<list_files>PATH</list_files>`` and
``<submit>ANSWER</submit>``. Parsing is lenient where small models are sloppy: the first complete
tag counts, text around it is ignored, and a reply with no tag but one fenced code block
(`````bash`` or `````python``) runs that block. The tool's output comes back as the next user
message (`format_result`), its exit status and any limit that stopped it included.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["STOPS", "TEXT_SYSTEM", "TOOLS", "TOOL_NAMES", "BadCall", "ToolCall", "format_result", "parse_text_call",
           "parse_tool_calls"]

ToolName = Literal["bash", "python", "read_file", "write_file", "list_files", "submit"]
TOOL_NAMES: tuple[ToolName, ...] = ("bash", "python", "read_file", "write_file", "list_files", "submit")


@dataclass(frozen=True)
class BadCall:
    """A tool call that cannot be run: why, and the id of the OpenAI-style call it was."""

    reason: str
    id: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """One tool call: its name, arguments, and the id an OpenAI-style call carries."""

    name: ToolName
    args: dict[str, str] = field(default_factory=dict)
    id: str | None = None


#: Short on purpose: every turn of every episode prefills it again.
TEXT_SYSTEM = """You are an agent in a Linux sandbox with no network; your working directory is /work.
Reply with exactly one tool call and nothing after it:
<bash>COMMAND</bash>, <python>CODE</python>, <read_file>PATH</read_file>,
<write_file path="PATH">TEXT</write_file>, <list_files>PATH</list_files>,
or <submit>ANSWER</submit> to finish (ANSWER: done if the result is in files)."""


def _function(name: str, description: str, **params: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {k: {"type": "string", "description": v}
                                                        for k, v in params.items()},
                       "required": list(params)}}}


#: The tools as OpenAI function definitions.
TOOLS: tuple[dict[str, Any], ...] = (
    _function("bash", "Run a bash command in /work.", command="The command."),
    _function("python", "Run Python 3 code in /work.", code="The code."),
    _function("read_file", "Show a file's text.", path="Path, relative to /work or absolute."),
    _function("write_file", "Write a text file.", path="Path, relative to /work or absolute.",
              content="The whole new content."),
    _function("list_files", "List a directory.", path="Path, relative to /work or absolute."),
    _function("submit", "End the task with the final answer.", answer="The answer (done if it is in files)."),
)

#: Where a text-protocol reply ends: the closing tag of its tool call (nothing after it is read).
STOPS: tuple[str, ...] = tuple(f"</{name}>" for name in TOOL_NAMES)

#: The argument each text tag's body fills.
_BODY_ARG = {"bash": "command", "python": "code", "read_file": "path", "write_file": "content",
             "list_files": "path", "submit": "answer"}
_TAG = re.compile(r"<(bash|python|read_file|write_file|list_files|submit)((?:\s+\w+\s*=\s*\"[^\"]*\")*)\s*>"
                  r"(.*?)</\1\s*>", re.DOTALL)
_SELF_CLOSING = re.compile(r"<(list_files|read_file)\s+path\s*=\s*\"([^\"]*)\"\s*/>")
_ATTR = re.compile(r"(\w+)\s*=\s*\"([^\"]*)\"")
_FENCE = re.compile(r"```(bash|sh|shell|python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def _strip(text: str) -> str:
    """A tag's body without the newline that opens and closes it."""
    return text.removeprefix("\n").removesuffix("\n") if "\n" in text else text.strip()


def parse_text_call(reply: str) -> ToolCall | None:
    """The first tool call written in ``reply`` (text protocol), or None when there is none."""
    tag = _TAG.search(reply)
    closing = _SELF_CLOSING.search(reply)
    if closing and (tag is None or closing.start() < tag.start()):
        return ToolCall(closing.group(1), {"path": closing.group(2)})  # type: ignore[arg-type]
    if tag is not None:
        name = tag.group(1)
        args = dict(_ATTR.findall(tag.group(2)))
        body = _strip(tag.group(3))
        if name in ("read_file", "list_files", "submit"):
            body = body.strip()
        args[_BODY_ARG[name]] = body
        if name == "list_files" and not args["path"]:
            args["path"] = "."
        return ToolCall(name, args)  # type: ignore[arg-type]
    fences = _FENCE.findall(reply)
    if len(fences) == 1:
        lang, code = fences[0]
        if lang in ("python", "py"):
            return ToolCall("python", {"code": code.rstrip("\n")})
        return ToolCall("bash", {"command": code.rstrip("\n")})
    return None


def parse_tool_calls(calls: tuple[dict[str, Any], ...]) -> list[ToolCall | BadCall]:
    """OpenAI-style tool calls as `ToolCall`s; one that cannot be used becomes a `BadCall`."""
    out: list[ToolCall | BadCall] = []
    for call in calls:
        name, cid = str(call.get("name", "")), call.get("id")
        if name not in TOOL_NAMES:
            out.append(BadCall(f"unknown tool {name!r}; the tools are {', '.join(TOOL_NAMES)}", cid))
            continue
        try:
            args = json.loads(call.get("arguments") or "{}")
        except json.JSONDecodeError as exc:
            out.append(BadCall(f"the arguments of {name} are not JSON ({exc.msg})", cid))
            continue
        if not isinstance(args, dict):
            out.append(BadCall(f"the arguments of {name} are not a JSON object", cid))
            continue
        out.append(ToolCall(name, {str(k): str(v) for k, v in args.items()}, call.get("id")))
    return out


def format_result(call: ToolCall, output: str, exit_code: int | None, limit: str | None) -> str:
    """The tool result as the model reads it (text protocol: the next user message)."""
    status = f"exit {exit_code}" if exit_code is not None else "killed"
    if limit:
        status += f", stopped by the {limit} limit"
    return f"[{call.name} result, {status}]\n{output}" if output else f"[{call.name} result, {status}] (no output)"
