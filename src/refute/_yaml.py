"""YAML files validated by pydantic, with errors that name the file, the line and the field: study,
policy, disclosure and guard-stack files.

The text is parsed twice: ``yaml.compose`` keeps every node's position (its "mark"), and
``yaml.safe_load`` gives the data pydantic validates. A pydantic error location such as
``("runs", 2, "limit")`` is walked down the node tree to the line it came from; a missing field is
reported at the line of the mapping that lacks it. Duplicate keys, which YAML would silently
collapse to the last one, are an error too.

Parsing takes time linear in the file: aliases (``*name``) share their anchor's node, so a few
hundred bytes of nested aliases can stand for a billion values ("billion laughs"). Before any data
is built, one pass over the parse events counts the aliases and the values the data would hold
with every alias expanded; a file over `MAX_ALIASES`, `MAX_VALUES` or `MAX_DEPTH` is refused at the
line where it goes over. The node tree is walked once, shared nodes included.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from refute.errors import ConfigError

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_VALUES", "Issue", "SpecFileError", "YamlDoc", "format_loc",
           "located", "parse_yaml", "read_yaml", "validate_doc"]

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]

#: Most aliases (``*name``) in one file; a study reuses a system prompt or two.
MAX_ALIASES = 100
#: Most values (scalars, lists, mappings) the data may hold once every alias is expanded.
MAX_VALUES = 100_000
#: Deepest nesting of lists and mappings.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Issue:
    """One problem in a file: where (field path and line) and what."""

    loc: Loc
    message: str
    line: int | None = None


class SpecFileError(ConfigError):
    """A study or policy file is malformed. Names the file, and the line and field of each issue."""

    def __init__(self, path: str, issues: Sequence[Issue], *, what: str = "file") -> None:
        self.path, self.issues = path, list(issues)
        first = self.issues[0] if self.issues else Issue((), "invalid")
        self.line, self.field = first.line, format_loc(first.loc) or None
        lines = [_one(path, i) for i in self.issues]
        many = f"{path}: {len(lines)} problems in this {what}:\n  " + "\n  ".join(lines)
        head = lines[0] if len(lines) == 1 else many
        super().__init__(f"{head}\nnothing was run; fix the {what} and try again")


def _one(path: str, issue: Issue) -> str:
    where = f"{path}:{issue.line}" if issue.line is not None else path
    name = format_loc(issue.loc)
    return f"{where}: field '{name}': {issue.message}" if name else f"{where}: {issue.message}"


def format_loc(loc: Loc) -> str:
    """``("runs", 2, "limit")`` -> ``runs[2].limit``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass(frozen=True)
class YamlDoc:
    """A parsed YAML file: its text, its data, its node tree (for lines) and the text's sha256."""

    path: str
    text: str
    data: Any
    root: yaml.Node | None = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def line_of(self, loc: Loc) -> int | None:
        """The 1-based line of the node at ``loc`` (or of its deepest existing parent).

        Walks one path down the tree, ``len(loc)`` nodes at most (files with an alias inside its
        own anchor, the only way to loop, are refused by `parse_yaml`)."""
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in loc:
            child, key_line = _child(node, part)
            if child is None:
                return line if key_line is None else key_line
            node, line = child, key_line if key_line is not None else child.start_mark.line + 1
        return line


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node | None, int | None]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value, key.start_mark.line + 1
        return None, None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part], None
    return None, None


def _duplicates(node: yaml.Node | None, loc: Loc = (), walked: set[int] | None = None) -> list[Issue]:
    """Keys that appear twice in one mapping; a node shared through aliases is walked once."""
    walked = set() if walked is None else walked
    if node is None or id(node) in walked:
        return []
    walked.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        out: list[Issue] = []
        for key, value in node.value:
            name = str(getattr(key, "value", ""))
            line = key.start_mark.line + 1
            if name in seen:
                out.append(Issue((*loc, name), f"appears twice (first on line {seen[name]}); "
                                 "keep one", line))
            seen.setdefault(name, line)
            out += _duplicates(value, (*loc, name), walked)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [i for n, item in enumerate(node.value) for i in _duplicates(item, (*loc, n), walked)]
    return []


def _check_size(text: str, label: str, what: str) -> None:
    """Refuse, before any data is built, a file whose aliases expand to too much data.

    One pass over the parse events: the expanded size of each anchored value is known when the
    value ends, and an alias adds that size. Linear in the text, however the aliases nest.
    """
    sizes: dict[str, int] = {}  # anchor -> values it holds, expanded
    enclosing: list[tuple[str | None, int]] = []  # open lists/mappings: (anchor, total at start)
    total = aliases = 0
    fix = "write the values out, or use fewer anchors and aliases (&name / *name)"
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0  # PyYAML's parser always sets it
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                _refuse(label, what, line, f"more than {MAX_ALIASES} aliases; {fix}")
            if any(anchor == event.anchor for anchor, _ in enclosing):
                _refuse(label, what, line, f"alias *{event.anchor} is inside its own anchor "
                        f"&{event.anchor} (an endless value); {fix}")
            total += sizes.get(event.anchor or "", 1)  # an undefined alias fails in compose
            if total > MAX_VALUES:
                _refuse(label, what, line, f"with its aliases expanded the data would hold more than "
                        f"{MAX_VALUES} values (alias *{event.anchor} here); {fix}")
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            enclosing.append((event.anchor, total))
            total += 1
            if len(enclosing) > MAX_DEPTH:
                _refuse(label, what, line, f"lists and mappings nested more than {MAX_DEPTH} deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, start = enclosing.pop()
            if anchor is not None:
                sizes[anchor] = total - start
        if total > MAX_VALUES:
            _refuse(label, what, line, f"the data holds more than {MAX_VALUES} values; a {what} is far smaller")


def _refuse(label: str, what: str, line: int, message: str) -> NoReturn:
    raise SpecFileError(label, [Issue((), message, line)], what=what)


def read_yaml(path: str | Path, *, what: str) -> YamlDoc:
    """Read and parse a YAML file; a syntax error or duplicate key raises `SpecFileError`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise SpecFileError(str(p), [Issue((), "not valid UTF-8; save the file as UTF-8", line)],
                            what=what) from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the {what} ({exc.strerror or exc})") from exc
    return parse_yaml(text, str(p), what=what)


def parse_yaml(text: str, label: str, *, what: str) -> YamlDoc:
    """Parse YAML ``text`` read from ``label`` (a path, for messages)."""
    try:
        _check_size(text, label, what)
        loader = yaml.SafeLoader(text)  # what yaml.safe_load does, keeping the node tree
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        raise SpecFileError(label, [Issue((), f"not valid YAML: {problem}", line)], what=what) from None
    doc = YamlDoc(label, text, data, root)
    dups = _duplicates(root)
    if dups:
        raise SpecFileError(label, dups, what=what)
    if not isinstance(data, dict):
        raise SpecFileError(label, [Issue((), f"a {what} is a YAML mapping (key: value lines), "
                                     f"got {type(data).__name__}", 1)], what=what)
    return doc


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``; anything else unchanged."""
    args = [a for a in get_args(tp) if a is not type(None)]
    return args[0] if get_origin(tp) not in (list, dict) and len(args) == 1 else tp


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names of the pydantic model found at ``loc`` inside ``model`` (or [])."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _message(err: dict[str, Any], model: type[BaseModel], loc: Loc) -> str:
    kind, msg = err.get("type", ""), str(err.get("msg", "invalid"))
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1) if loc else []
        hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(known)}" if known else ""
        return "unknown field" + (f"; {hint}" if hint else "")
    return msg.removeprefix("Value error, ")


def validate_doc(doc: YamlDoc, model: type[M], *, what: str) -> M:
    """Validate ``doc.data`` with ``model``; every pydantic error becomes a located `Issue`."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
            issues.append(Issue(loc, _message(dict(err), model, loc), doc.line_of(loc)))
        raise SpecFileError(doc.path, issues, what=what) from None


def located(doc: YamlDoc, problems: Sequence[tuple[Loc, str]], *, what: str) -> None:
    """Raise `SpecFileError` for ``problems`` found after validation (cross-references)."""
    if problems:
        raise SpecFileError(doc.path, [Issue(loc, msg, doc.line_of(loc)) for loc, msg in problems],
                            what=what)
