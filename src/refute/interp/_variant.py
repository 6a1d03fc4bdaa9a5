"""An intervention as a model variant: the engine measures it like any other model.

`Variant` wraps an `HFBackend` and installs its hooks only while it generates, so the wrapped
model is untouched between calls and several variants can share one set of weights. Its spec
names the intervention (``default+ablate(dir=1a2b3c4d5e)``, or ``default+ablate:FILE`` when the
direction is saved in FILE: a spec `refute.models.load_model` accepts), so runs, cache keys and
reports keep the variants apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from refute.interp._directions import Direction, ablation_hooks, addition_hooks
from refute.interp._errors import InterpError
from refute.interp._sae import feature_hooks
from refute.interp._sites import HookFn, Site, hooks
from refute.models._base import Completion, GenerateRequest, ModelInfo
from refute.models._edits import AblateEdit, SteerEdit

__all__ = ["Variant", "ablated", "feature_edited", "steered"]


class Variant:
    """A backend that answers with ``base``'s model while ``make_hooks(model)``'s hooks are in."""

    def __init__(self, base: Any, name: str, make_hooks: Callable[[Any], dict[Site, HookFn]],
                 details: dict[str, str] | None = None) -> None:
        if not hasattr(base, "model") or not hasattr(base, "tokenizer"):
            raise InterpError(f"interventions need a local hf model; '{base.info.spec}' is served by "
                              f"the {base.info.backend} backend (use default, hf:..., gguf:...)")
        self.base = base
        self.make_hooks = make_hooks
        self.info = ModelInfo(
            spec=f"{base.info.spec}+{name}", backend=base.info.backend, revision=base.info.revision,
            details={**base.info.details, "intervention": name, **(details or {})},
        )

    @property
    def preferred_batch_size(self) -> int:
        return self.base.preferred_batch_size

    @property
    def model(self) -> Any:
        return self.base.model

    @property
    def tokenizer(self) -> Any:
        return self.base.tokenizer

    def generate(self, requests: Sequence[GenerateRequest]) -> Iterator[tuple[int, Completion]]:
        with hooks(self.base.model, self.make_hooks(self.base.model)):
            yield from self.base.generate(requests)

    def close(self) -> None:  # the weights belong to the base backend
        return None


def ablated(base: Any, direction: Direction, *, name: str | None = None,
            file: str | Path | None = None) -> Variant:
    """``base`` with the direction ablated at every layer and position.

    Given ``file`` (where ``direction`` is saved), the variant is named by the model-spec grammar
    (``BASE+ablate:FILE``), so its spec loads again with `refute.models.load_model`.
    """
    if name is None:
        name = (str(AblateEdit(str(file))) if file is not None else
                f"ablate(dir={direction.digest},layer={direction.layer},pos={direction.position})")
    return Variant(base, name, lambda model: ablation_hooks(model, direction),
                   {"direction": direction.digest, "direction_label": direction.label})


def steered(base: Any, direction: Direction, layer: int, coefficient: float, *,
            name: str | None = None, file: str | Path | None = None) -> Variant:
    """``base`` with ``coefficient * direction`` added to the residual stream entering ``layer``.

    Given ``file`` (where ``direction`` is saved), the variant is named by the model-spec grammar
    (``BASE+steer:FILE@LAYER*COEF``), so its spec loads again with `refute.models.load_model`.
    """
    if name is None:
        name = (str(SteerEdit(str(file), int(layer), float(coefficient))) if file is not None else
                f"add(dir={direction.digest},layer={layer},coef={coefficient:g})")
    return Variant(base, name, lambda model: addition_hooks(direction, layer, coefficient),
                   {"direction": direction.digest, "direction_label": direction.label,
                    "layer": str(layer), "coefficient": f"{coefficient:g}"})


def feature_edited(base: Any, sae: Any, site: str | Site, features: Sequence[int],
                   value: float | None = 0.0, *, name: str | None = None) -> Variant:
    """``base`` with SAE ``features`` at ``site`` ablated (``value=0``) or clamped (``value=c``).

    A causal test of a feature, measured by the engine like any model (compare it with the base
    run and with a variant editing as many randomly chosen features).
    """
    ids = sorted(int(f) for f in features)
    label = ",".join(map(str, ids[:8])) + ("..." if len(ids) > 8 else "")
    name = name or f"sae-{'ablate' if not value else 'clamp'}(site={site},features={label}" + (
        f",value={value:g})" if value else ")")
    return Variant(base, name, lambda model: feature_hooks(sae, site, ids, value),
                   {"sae_site": str(site), "sae_features": ",".join(map(str, ids))})
