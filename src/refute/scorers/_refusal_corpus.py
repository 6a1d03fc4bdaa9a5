"""The refusal scorer's labelled corpus: fitting the shipped weights on it, and measuring how the
scorer generalises by **leave-one-source-out** validation (train on every source but one, test on
the one left out, for each source in turn; every fold reported).

A source is what produced the replies: one model under one system prompt, or one writer imitating
a model family's refusal style. A fold tests the scorer on a refusal style it was not fitted on,
which is what happens when it scores a model refute has never seen. Rows are labelled by
`docs/refusal-labelling.md`; each records ``source``, ``labeller`` and ``guideline``.

    python -m refute.scorers._refusal_corpus loso [--prompt-disjoint] [-o bench/results/refusal_loso.json]
    python -m refute.scorers._refusal_corpus fit      # refit data/refusal_clf.npz on the train split
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refute.errors import ScorerError
from refute.scorers._refusal_clf import WEIGHTS_FILE, Embedder, feature_matrix, predict_labels, train
from refute.scorers._refusal_rules import RuleResult, analyse
from refute.scorers._validate import LabelRow, binary_agreement, load_labels

__all__ = ["CORPUS_FILE", "Fold", "LosoResult", "corpus_path", "fit_corpus", "leave_one_source_out"]

CORPUS_FILE = "refusal_labels.jsonl"
DEFAULT_L2, DEFAULT_L2_EMBED = 10.0, 0.3  # l2_embed: the best of 1.0, 0.3, 0.1, 0.03 by pooled LOSO kappa


def corpus_path() -> Path:
    return Path(__file__).parent / "data" / CORPUS_FILE


@dataclass(frozen=True)
class Fold:
    """One held-out source: binary agreement with its labels, and where the scorer erred."""

    source: str
    n: int
    n_refusal: int  # rows labelled full or partial refusal
    accuracy: float
    kappa: float
    missed_refusals: int  # labelled refusal, scored compliance
    false_refusals: int  # labelled compliance, scored refusal
    three_way_accuracy: float
    errors_by_hard_case: dict[str, str] = field(default_factory=dict)  # tag -> "wrong/n"


@dataclass(frozen=True)
class LosoResult:
    """Every fold, and the pooled figure over all held-out predictions."""

    folds: list[Fold]
    pooled_accuracy: float
    pooled_kappa: float
    n: int
    settings: dict[str, Any]

    @property
    def worst_fold(self) -> Fold:
        return min(self.folds, key=lambda f: f.kappa)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "pooled_accuracy": round(self.pooled_accuracy, 4),
                "pooled_kappa": round(self.pooled_kappa, 4), "settings": self.settings,
                "folds": [asdict(f) for f in self.folds]}


def _binary(label: str) -> bool:
    return label != "full_compliance"


def _fold(source: str, rows: Sequence[LabelRow], pred: Sequence[str]) -> Fold:
    truth = [r.label for r in rows]
    acc, kappa = binary_agreement(truth, pred)  # a fold is one source's rows: never empty
    wrong: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for r, p in zip(rows, pred, strict=True):
        tag = r.hard_case or "untagged"
        seen[tag] += 1
        wrong[tag] += _binary(r.label) != _binary(p)
    return Fold(
        source=source, n=len(rows), n_refusal=sum(map(_binary, truth)), accuracy=acc, kappa=kappa,
        missed_refusals=sum(_binary(t) and not _binary(p) for t, p in zip(truth, pred, strict=True)),
        false_refusals=sum(_binary(p) and not _binary(t) for t, p in zip(truth, pred, strict=True)),
        three_way_accuracy=sum(t == p for t, p in zip(truth, pred, strict=True)) / len(rows),
        errors_by_hard_case={t: f"{wrong[t]}/{seen[t]}" for t in sorted(seen) if wrong[t]},
    )


def rows_by_source(rows: Sequence[LabelRow]) -> dict[str, list[int]]:
    """Row indices per source; raises ScorerError when a row has no source or there are fewer than two."""
    missing = [r.line for r in rows if not r.source]
    if missing:
        raise ScorerError(f"leave-one-source-out needs a source on every row; lines {missing[:5]} have none")
    by_source: dict[str, list[int]] = defaultdict(list)
    for k, r in enumerate(rows):
        by_source[str(r.source)].append(k)
    if len(by_source) < 2:
        raise ScorerError(f"leave-one-source-out needs at least two sources, got {sorted(by_source)}")
    return by_source


def _request(row: LabelRow) -> str:
    return " ".join((row.prompt or "").lower().split())


def _features(rows: Sequence[LabelRow], rules: Sequence[RuleResult], embedder: Embedder | None,
              prompt: bool) -> tuple[np.ndarray, bool]:
    """The feature matrix of ``rows``, with their requests' features when ``prompt`` and an
    embedder allow; and whether it has them (what `train`'s ``uses_prompt`` records)."""
    with_prompt = prompt and embedder is not None
    return feature_matrix(rules, embedder, [r.prompt for r in rows] if with_prompt else None), with_prompt


def leave_one_source_out(rows: Sequence[LabelRow], *, embedder: Embedder | None, l2: float = DEFAULT_L2,
                         l2_embed: float = DEFAULT_L2_EMBED, cascade: bool = True, prompt: bool = True,
                         prompt_disjoint: bool = False, rules: Sequence[RuleResult] | None = None,
                         x: np.ndarray | None = None) -> LosoResult:
    """Fit on all sources but one and score the one left out, for every source.

    ``prompt``: the classifier reads the request too (`feature_matrix` with prompts), as shipped.
    ``prompt_disjoint``: a fold's fit also leaves out every row, of any source, whose request
    (case and spacing aside) is one of the held-out source's, so no request is seen on both sides.
    ``rules`` and ``x`` (the rule results and feature matrix of ``rows``) may be passed in to reuse
    them across settings; the features do not depend on the other rows, so computing them once is
    the same as computing them per fold.
    """
    by_source = rows_by_source(rows)
    rules = list(rules) if rules is not None else [analyse(r.completion) for r in rows]
    if x is None:
        x, with_prompt = _features(rows, rules, embedder, prompt)
    else:
        with_prompt = prompt and embedder is not None
    labels = [r.label for r in rows]
    requests = [_request(r) for r in rows] if prompt_disjoint else []
    pred: list[str] = [""] * len(rows)
    folds = []
    for source in sorted(by_source):
        test = by_source[source]
        held = set(test)
        if prompt_disjoint:
            shared = {requests[k] for k in test}
            held |= {k for k, q in enumerate(requests) if q in shared}
        fit_idx = [k for k in range(len(rows)) if k not in held]
        weights = train(x[fit_idx], [labels[k] for k in fit_idx], l2=l2, l2_embed=l2_embed,
                        uses_prompt=with_prompt)
        fold_pred = predict_labels(weights, [rules[k] for k in test], x[test], cascade=cascade)
        for k, p in zip(test, fold_pred, strict=True):
            pred[k] = p
        folds.append(_fold(source, [rows[k] for k in test], fold_pred))
    acc, kappa = binary_agreement(labels, pred)
    settings = {"l2": l2, "l2_embed": l2_embed, "cascade": cascade, "embeddings": embedder is not None,
                "prompt": with_prompt, "prompt_disjoint": prompt_disjoint}
    return LosoResult(folds, acc, kappa, len(rows), settings)


def fit_corpus(rows: Sequence[LabelRow], embedder: Embedder | None, *, l2: float = DEFAULT_L2,
               l2_embed: float = DEFAULT_L2_EMBED, prompt: bool = True) -> Any:
    """The shipped weights: fitted on the rows given (the corpus's train split; its held-out fifth
    is what studies calibrate on), reading the requests too unless ``prompt`` is False."""
    x, with_prompt = _features(rows, [analyse(r.completion) for r in rows], embedder, prompt)
    return train(x, [r.label for r in rows], l2=l2, l2_embed=l2_embed, uses_prompt=with_prompt)


def _print(result: LosoResult) -> None:
    print(f"{'source':32} {'n':>5} {'refusal':>7} {'acc':>6} {'kappa':>6} {'missed':>6} {'false':>6}")
    for f in result.folds:
        print(f"{f.source:32} {f.n:5d} {f.n_refusal:7d} {f.accuracy:6.3f} {f.kappa:6.3f} "
              f"{f.missed_refusals:6d} {f.false_refusals:6d}")
    print(f"{'pooled':32} {result.n:5d} {'':7} {result.pooled_accuracy:6.3f} {result.pooled_kappa:6.3f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m refute.scorers._refusal_corpus",
                                     description="Fit or validate the refusal classifier on its corpus.")
    parser.add_argument("command", choices=("loso", "fit"))
    parser.add_argument("--labels", type=Path, default=corpus_path())
    parser.add_argument("--l2", type=float, default=DEFAULT_L2)
    parser.add_argument("--l2-embed", type=float, default=DEFAULT_L2_EMBED)
    parser.add_argument("--no-cascade", action="store_true", help="Classifier on every reply (loso only).")
    parser.add_argument("--no-prompt", action="store_true", help="The reply alone, not the request it answers.")
    parser.add_argument("--prompt-disjoint", action="store_true",
                        help="loso: also keep every row sharing a request with the held-out source out of the fit.")
    parser.add_argument("-o", "--output", type=Path, help="loso: write the folds as JSON here.")
    args = parser.parse_args(argv)
    rows = load_labels(args.labels)
    embedder = Embedder() if Embedder.available() else None
    if args.command == "fit":
        train_rows = [r for r in rows if r.split != "heldout"]
        weights = fit_corpus(train_rows, embedder, l2=args.l2, l2_embed=args.l2_embed, prompt=not args.no_prompt)
        out = Path(__file__).parent / "data" / WEIGHTS_FILE
        weights.save(out)
        print(f"saved {out} (digest {weights.digest}) from {len(train_rows)} rows (held out: "
              f"{len(rows) - len(train_rows)})")
        return
    result = leave_one_source_out(rows, embedder=embedder, l2=args.l2, l2_embed=args.l2_embed,
                                  cascade=not args.no_cascade, prompt=not args.no_prompt,
                                  prompt_disjoint=args.prompt_disjoint)
    _print(result)
    if args.output:
        payload = {"corpus": str(args.labels.name), "rows": len(rows),
                   "sources": dict(Counter(str(r.source) for r in rows)),
                   "labellers": dict(Counter(str(r.labeller) for r in rows)), **result.to_json()}
        args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
