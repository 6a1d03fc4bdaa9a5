"""Activation patching of one clean/corrupt prompt pair at several site kinds, as one table.

`patch_prompts` renders both prompts as generation does (or leaves them raw), turns the answer
words into single token ids, checks the positions, and runs `patch_sweep` once per site kind.
The *effect* of a patch is the change it makes to the target run's metric
(``logit[answer] - logit[wrong]`` at the last position): patched minus unpatched. With identical
prompts every effect is zero; a patch that carries everything the prompts differ in has effect
``clean - corrupt`` (denoising) or ``corrupt - clean`` (noising).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refute.interp._capture import encode_batch, render_prompts
from refute.interp._errors import InterpError
from refute.interp._patching import PatchDirection, PatchResult, patch_sweep
from refute.interp._sites import SiteKind, n_layers
from refute.interp._svg import heatmap, write_svg

if TYPE_CHECKING:
    import torch

__all__ = ["PatchTable", "answer_token_id", "patch_prompts"]


def answer_token_id(tokenizer: Any, text: str, option: str = "answer") -> int:
    """The one token ``text`` encodes to; an `InterpError` when it is several (or none)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise InterpError(f"{option} {text!r} is {len(ids)} tokens {pieces}, not one; the metric compares "
                          "the logits of two single tokens (a leading space often makes a word one token)")
    return int(ids[0])


@dataclass(frozen=True)
class PatchTable:
    """One `PatchResult` per site kind, over the same prompts, answers and positions."""

    results: tuple[PatchResult, ...]
    answer: str
    wrong: str
    answer_ids: tuple[int, int]
    clean_prompt: str
    corrupt_prompt: str

    @property
    def direction(self) -> str:
        return self.results[0].direction

    @property
    def clean(self) -> float:
        return self.results[0].clean

    @property
    def corrupt(self) -> float:
        return self.results[0].corrupt

    @property
    def baseline(self) -> float:
        """The unpatched target run's metric: the corrupt run when denoising, the clean one when noising."""
        return self.corrupt if self.direction == "clean_to_corrupt" else self.clean

    def effect(self, result: PatchResult) -> torch.Tensor:
        """``(n_layers, n_positions)``: patched metric minus the unpatched target's."""
        return result.values - self.baseline

    def _columns(self) -> list[str]:
        r = self.results[0]
        return [f"{p} {r.tokens[p]!r}" for p in r.positions]

    def to_markdown(self) -> str:
        head = (f"{self.direction}: logit[{self.answer!r}] - logit[{self.wrong!r}] at the last position is "
                f"{self.clean:.4f} on the clean prompt, {self.corrupt:.4f} on the corrupt one. Cells: the "
                "effect of patching one site at one position (patched minus unpatched).")
        lines = [head, ""]
        for result in self.results:
            lines += [f"{result.site_kind}:", "", "| layer | " + " | ".join(self._columns()) + " |",
                      "|---" * (len(result.positions) + 1) + "|"]
            effect = self.effect(result)
            for i, layer in enumerate(result.layers):
                lines.append(f"| {layer} | " + " | ".join(f"{float(v):.4f}" for v in effect[i]) + " |")
            lines.append("")
        return "\n".join(lines).rstrip()

    def to_dict(self) -> dict[str, Any]:
        r0 = self.results[0]
        return {
            "direction": self.direction, "metric": "logit_diff", "answer": self.answer, "wrong": self.wrong,
            "answer_ids": list(self.answer_ids), "clean_prompt": self.clean_prompt,
            "corrupt_prompt": self.corrupt_prompt, "clean": self.clean, "corrupt": self.corrupt,
            "baseline": self.baseline, "positions": list(r0.positions), "tokens": list(r0.tokens),
            "sites": [{"kind": r.site_kind, "layers": list(r.layers), "values": r.values.tolist(),
                       "effect": self.effect(r).tolist()} for r in self.results],
        }

    def to_svg(self) -> str:
        """Every (site, position) effect as one heatmap, centred at zero effect."""
        rows = [f"{r.site_kind}.{layer}" for r in self.results for layer in r.layers]
        values = [row for r in self.results for row in self.effect(r).tolist()]
        return heatmap(values, rows, self._columns(), title=f"activation patching, {self.direction}",
                       row_title="site", col_title="position (token)", value_label="effect", centre=0.0)

    def plot(self, path: str | Path) -> Path:
        return write_svg(self.to_svg(), path)


def patch_prompts(backend: Any, clean: str, corrupt: str, answer: str, wrong: str, *,
                  sites: Mapping[SiteKind, Sequence[int] | None], positions: Sequence[int] | None = None,
                  direction: PatchDirection = "clean_to_corrupt", chat: bool = True) -> PatchTable:
    """Patch ``sites`` (kind -> layers, None for all) at ``positions`` (None: every token)."""
    model, tokenizer = backend.model, backend.tokenizer
    if not sites:
        raise InterpError("name at least one site kind to patch, such as resid_pre")
    ids = (answer_token_id(tokenizer, answer, "--answer"), answer_token_id(tokenizer, wrong, "--wrong"))
    if ids[0] == ids[1]:
        raise InterpError(f"--answer {answer!r} and --wrong {wrong!r} are the same token; the logit "
                          "difference would be zero whatever is patched")
    clean_text, corrupt_text = render_prompts(tokenizer, [clean, corrupt], chat=chat)
    T = int(encode_batch(tokenizer, [clean_text])["input_ids"].shape[1])
    for p in positions or ():
        if not -T <= p < T:
            raise InterpError(f"position {p} is outside the prompt, which has {T} tokens ({-T} to {T - 1})")
    layers_n = n_layers(model)
    results = []
    for kind, layers in sites.items():
        for layer in layers or ():
            if not 0 <= layer < layers_n:
                raise InterpError(f"site '{kind}.{layer}': layer {layer} does not exist; the model has "
                                  f"layers 0-{layers_n - 1}")
        results.append(patch_sweep(model, tokenizer, clean_text, corrupt_text, ids,
                                   layers=None if layers is None else list(layers), positions=positions,
                                   site_kind=kind, direction=direction))
    return PatchTable(tuple(results), answer, wrong, ids, clean_text, corrupt_text)
