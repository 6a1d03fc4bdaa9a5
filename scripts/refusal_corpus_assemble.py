"""Assemble the refusal scorer's labelled corpus (src/refute/scorers/data/refusal_labels.jsonl)
from its parts, and check every row's provenance.

Parts: the first wave's rows (the existing corpus, guideline v1), rows written to a target label
in the style of a model family (``style-*.jsonl``, labelled by their writer), and replies of the
default model under refusal-style system prompts (``*.raw.jsonl`` from
refusal_corpus_generate.py) with labels given blind (``*.labels.jsonl``: id, label, hard_case).

Replies of a model that comply (fully or partly) with a harmful request are cut to their first
~300 characters at a word boundary (``"truncated": true``): enough to show that the reply
complies, not its content. Rows written to a target label never hold operational content.
A fifth of the rows (by a hash of the id) get ``"split": "heldout"``: the shipped weights are fitted
on the rest, and studies calibrate on them (an in-distribution figure; the out-of-source figure is
the leave-one-source-out validation).

    python scripts/refusal_corpus_assemble.py --parts corpus_work --xstest ../shared/data/xstest_prompts.csv
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "src" / "refute" / "scorers" / "data" / "refusal_labels.jsonl"
HARMFUL = ROOT / "src" / "refute" / "datasets" / "data" / "harmful.jsonl"
KEEP = ("id", "prompt", "completion", "label", "source", "hard_case", "labeller", "guideline", "prompt_origin",
        "prompt_harm", "truncated", "split")
CUT = 300


def cut(text: str) -> str:
    return text if len(text) <= CUT else text[:CUT].rsplit(" ", 1)[0]


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=Path, required=True)
    parser.add_argument("--xstest", type=Path, help="XSTest prompts CSV (for which prompts are unsafe).")
    parser.add_argument("-o", "--output", type=Path, default=CORPUS)
    args = parser.parse_args()

    harmful = {r["prompt"] for r in read(HARMFUL)}
    xstest_type: dict[str, str] = {}
    if args.xstest:
        with args.xstest.open(newline="", encoding="utf-8") as f:
            xstest_type = {r["id"]: r["type"] for r in csv.DictReader(f)}
    rows: list[dict] = []
    for r in read(CORPUS):  # the existing corpus: first-wave rows are kept, later parts rebuilt
        if r.get("guideline", "refusal-labels-v1") != "refusal-labels-v1":
            continue
        r.pop("split", None)
        r.setdefault("labeller", "first-wave-author")
        r.setdefault("guideline", "refusal-labels-v1")
        if r["source"] == "default-model":
            r["prompt_origin"] = "refute:harmful" if r["prompt"] in harmful else "refute:benign-lookalike"
            r["prompt_harm"] = "harmful" if r["prompt"] in harmful else "benign"
        rows.append(r)
    for path in sorted(args.parts.glob("style-*.jsonl")):
        rows += read(path)
    for path in sorted(args.parts.glob("*.raw.jsonl")):
        labels = {}
        for lab in sorted(args.parts.glob(path.name.replace(".raw.jsonl", "") + "*.labels.jsonl")):
            labels.update({r["id"]: r for r in read(lab)})
        for r in read(path):
            if r["id"] not in labels:
                continue
            origin = r.pop("origin")
            kind, _, key = origin.partition(":")
            harm = "harmful" if kind == "harmful" or xstest_type.get(key, "").startswith("contrast_") else "benign"
            r.pop("system_style", None)
            r.update(label=labels[r["id"]]["label"], hard_case=labels[r["id"]].get("hard_case"),
                     labeller="labeller-agent-blind", guideline="refusal-labels-v2",
                     prompt_origin=("xstest:" if kind == "xstest_prompts" else "refute:harmful:") + key,
                     prompt_harm=harm)
            rows.append(r)
    for r in rows:
        if r.get("prompt_harm") == "harmful" and r["label"] != "full_refusal" and len(r["completion"]) > CUT:
            r["completion"], r["truncated"] = cut(r["completion"]), True
    for r in rows:  # a fixed fifth of every source is held out of the shipped weights' fit
        r["split"] = "heldout" if int(hashlib.sha256(r["id"].encode()).hexdigest(), 16) % 5 == 0 else "train"
    ids = Counter(r["id"] for r in rows)
    dup = [k for k, n in ids.items() if n > 1]
    if dup:
        raise SystemExit(f"duplicate ids: {dup[:5]}")
    for r in rows:
        missing = [k for k in ("source", "labeller", "guideline", "label") if not r.get(k)]
        if missing:
            raise SystemExit(f"row {r['id']} lacks {missing}")
    with args.output.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in KEEP if k in r}, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {args.output}")
    for key in ("source", "labeller", "guideline", "label"):
        print(key, dict(Counter(r[key] for r in rows)))


if __name__ == "__main__":
    main()
