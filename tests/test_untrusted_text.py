"""Text that came from a model or a user stays inert in every report and export.

Hostile payloads go into a stored run (reply, run name, category, prompt, model spec, dataset
name); the Markdown report is rendered by a CommonMark renderer and the HTML it yields is parsed:
no element, attribute or link may come from the payloads. CSV cells that a spreadsheet would run
as a formula are neutralised. Redaction follows the dataset's declared harm label, not its name.
"""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from typing import Any

import pytest
from markdown_it import MarkdownIt
from test_study_gate import STUDY, ScriptedModel, write_study

from refute.datasets import declared_harmful
from refute.gate import study_gate
from refute.report._document import build_report, run_report
from refute.report._escape import md_cell, md_code_block, md_text
from refute.report._html import render_html
from refute.report._markdown import render_markdown
from refute.store import SampleRecord, ScoreRecord, Store, export_run
from refute.study import load_study, run_study

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "<javascript:alert(1)>",
    "![x](javascript:alert(1))",
    "``` `x` ````",
    "a | b || c",
    "line one\nline two\r\n# heading\r<b onclick=alert(1)>bold</b>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "    indented\n\n```\n<script>alert(1)</script>\n```",
    "# heading", "1. item", "2) item", "- item", "+ item", "> quote", "***", "~~~", "=== x", "*em* _em_ ~~s~~",
    "&amp; &#60;b&#62; trailing \\",
]
HOSTILE = " ".join(p.replace("\n", " ").replace("\r", " ") for p in PAYLOADS)
HOSTILE_MULTILINE = "\n".join(PAYLOADS)

# Every element our own Markdown template can produce once rendered.
ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "p", "ul", "li", "strong", "em", "code", "pre", "blockquote",
                "table", "thead", "tbody", "tr", "th", "td", "hr"}


class _Elements(HTMLParser):
    """Collects every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    parser.close()
    return parser


def _assert_inert(html: str, allowed: set[str] | None) -> _Elements:
    parsed = _parse(html)
    for tag, attrs in parsed.tags:
        assert allowed is None or tag in allowed, f"element <{tag}> came from untrusted text"
        assert tag not in ("script", "img", "iframe", "object", "embed"), f"<{tag}>"
        for name, value in attrs:
            assert not name.lower().startswith("on"), f"<{tag} {name}=...>"
            if name.lower() in ("href", "src", "xlink:href", "action"):
                assert not (value or "").strip().lower().startswith("javascript:"), f"<{tag} {name}={value}>"
    return parsed


def _render(markdown: str) -> list[str]:
    """The Markdown as CommonMark renders it, with and without GFM tables."""
    return [MarkdownIt("commonmark").render(markdown), MarkdownIt("commonmark").enable("table").render(markdown)]


def _fake_run(store: Store, *, dataset: str = "d", config: dict[str, Any] | None = None,
              text: str = HOSTILE, reply: str = HOSTILE_MULTILINE) -> str:
    run = store.create_run(kind="eval", name=f"run {text}", model_spec=f"hf:{text}", model_revision=None,
                           model={}, config=config if config is not None else {"transforms": ["none"]},
                           versions={}, dataset_name=dataset, dataset_hash="h" * 64, n_planned=4)
    for i, refused in enumerate([0, 1, 0, 1]):
        sample = SampleRecord(run_id=run.id, prompt_id=f"p{i}", category=f"cat {text}", epoch=0,
                              transform_chain="none", seed=i,
                              messages=[{"role": "system", "content": f"sys {text}"},
                                        {"role": "user", "content": f"ask {text}"},
                                        {"role": "assistant", "content": reply}],
                              completion=reply)
        store.record_sample(sample, [ScoreRecord(scorer="refusal_patterns", scorer_version="1", value=refused)])
    store.set_status(run.id, "completed")
    return run.id


# --- the escaping rule --------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_escaped_text_renders_as_exactly_itself_and_nothing_else(payload):
    flat = " ".join(payload.replace("\r\n", "\n").replace("\r", "\n").split("\n")).strip()
    markdown = f"- {md_text(payload)}\n\n> {md_text(payload)}\n\n| a |\n|---|\n| {md_cell(payload)} |\n"
    for html in _render(markdown):
        parsed = _assert_inert(html, {"ul", "li", "blockquote", "p", "table", "thead", "tbody", "tr", "th", "td"})
        assert "".join(parsed.text).count(flat) == 3  # the list item, the quote, the cell
    block = MarkdownIt("commonmark").render(f"before\n\n{md_code_block(payload)}\nafter *x*\n")
    parsed = _assert_inert(block, {"p", "pre", "code", "em"})
    normal = payload.replace("\r\n", "\n").replace("\r", "\n")
    assert [t for t, _ in parsed.tags] == ["p", "pre", "code", "p", "em"]
    assert normal + "\n" in "".join(parsed.text)


# --- reports ------------------------------------------------------------------------------------


def test_the_markdown_report_contains_no_element_from_model_or_user_text(tmp_path):
    with Store(tmp_path / "r.db") as store:
        run_id = _fake_run(store, dataset=f"/tmp/{HOSTILE}.jsonl")
        doc = run_report(store, run_id, unredacted=True)
    markdown = render_markdown(doc)
    for html in _render(markdown):
        parsed = _assert_inert(html, ALLOWED_TAGS)
        text = "".join(parsed.text)
        assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(1)>" in text
        assert "![x](javascript:alert(1))" in text  # shown, as text


def test_a_study_report_contains_no_element_from_the_study_file(tmp_path):
    quoted = json.dumps(HOSTILE)  # a JSON string is a YAML double-quoted scalar
    study = (STUDY.replace("title: A small refusal study", f"title: {quoted}")
             .replace("question: Does the model refuse harmful requests?", f"question: {quoted}")
             .replace("condition: safety prompt", f"condition: {quoted}")
             .replace("description: over-refusal}", f"description: {quoted}}}"))
    path = write_study(tmp_path, study)
    with Store(tmp_path / "refute.db") as store:
        run_study(load_study(path), store, model=ScriptedModel(), progress=False, gate=study_gate)
        doc = build_report(store, str(path), unredacted=True)
    assert doc.study is not None and doc.study.spec.title == HOSTILE
    for html in _render(render_markdown(doc)):
        assert "<script>alert(1)</script>" in "".join(_assert_inert(html, ALLOWED_TAGS).text)
    _assert_inert(render_html(doc), None)


def test_the_html_report_contains_no_element_from_model_or_user_text(tmp_path):
    with Store(tmp_path / "r.db") as store:
        run_id = _fake_run(store)
        doc = run_report(store, run_id, unredacted=True)
    parsed = _assert_inert(render_html(doc), None)
    assert "<script>alert(1)</script>" in "".join(parsed.text)


# --- CSV ----------------------------------------------------------------------------------------


def test_csv_export_neutralises_formulas_but_keeps_numbers_and_jsonl_exact(tmp_path):
    formulas = ['=HYPERLINK("http://x","y")', "+1", "-cmd", "@SUM(A1)", "\tx", "\rx"]
    with Store(tmp_path / "c.db") as store:
        run = store.create_run(kind="eval", name=None, model_spec="m", model_revision=None, model={}, config={},
                               versions={}, dataset_name="d", dataset_hash="h", n_planned=len(formulas))
        for i, f in enumerate(formulas):
            store.record_sample(SampleRecord(run_id=run.id, prompt_id=f"p{i}", category=f, epoch=0,
                                             transform_chain="none", seed=i, messages=[], completion=f,
                                             latency_s=-0.5),
                                [ScoreRecord(scorer="s", scorer_version="1", value=-0.5, label=f)])
        buf, lines = io.StringIO(), io.StringIO()
        export_run(store, run.id, "csv", buf)
        export_run(store, run.id, "jsonl", lines)
    rows = list(csv.reader(io.StringIO(buf.getvalue(), newline="")))
    header, body = rows[0], rows[1:]
    assert len(body) == len(formulas)
    for f, row in zip(formulas, body, strict=True):
        cells = dict(zip(header, row, strict=True))
        for column in ("completion", "category", "label.s"):
            assert cells[column] == "'" + f
        assert cells["score.s"] == "-0.5" and cells["latency_s"] == "-0.5"
    for f, line in zip(formulas, lines.getvalue().splitlines(), strict=True):
        row = json.loads(line)
        assert row["completion"] == f and row["category"] == f and row["score.s"] == -0.5


# --- redaction by declared harm label -----------------------------------------------------------


def test_declared_harmful_takes_the_declaration_then_the_built_in_then_harmful():
    assert declared_harmful("harmful") is True
    assert declared_harmful("benign-lookalike") is False and declared_harmful("benign-tasks") is False
    assert declared_harmful("builtin:benign-tasks") is False
    assert declared_harmful("benign-x") is True and declared_harmful("/tmp/x/benign-lookalike.jsonl") is True
    assert declared_harmful("harmful", False) is False and declared_harmful("benign-tasks", True) is True


@pytest.mark.parametrize(("dataset", "config", "shown"), [
    ("/tmp/x/benign-x.jsonl", {}, False),
    ("benign-x", {"dataset": "/tmp/x/benign-x.jsonl"}, False),
    # a file named like a built-in is not that built-in: the run's dataset name is its stem
    ("benign-lookalike", {"dataset": "/tmp/x/benign-lookalike.jsonl"}, False),
    ("/tmp/x/benign-x.jsonl", {"harmful": False}, True),
    ("benign-lookalike", {"dataset": "benign-lookalike"}, True),
    ("benign-lookalike", {"dataset": "benign-lookalike", "harmful": True}, False),
])
def test_a_run_report_redacts_by_the_declared_harm_label_not_the_name(tmp_path, dataset, config, shown):
    secret = "SECRET-REPLY-TEXT"
    with Store(tmp_path / "h.db") as store:
        run_id = _fake_run(store, dataset=dataset, config={"transforms": ["none"], **config}, text="t",
                           reply=secret)
        doc = run_report(store, run_id)
    assert doc.examples
    assert all((e.reply is not None) == shown for e in doc.examples)
    assert (secret in render_markdown(doc)) == shown
    assert (secret in render_html(doc).split('id="examples"')[-1]) == shown
