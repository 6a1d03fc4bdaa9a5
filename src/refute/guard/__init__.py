"""Layered safeguards: a stack of guard layers in front of a model (`refute serve`), and the stack
measured as a whole (`refute layers`): each layer's catch rate alone, the stack's miss rate against
the rate independence predicts, correlated holes, and what each layer costs in over-refusal."""

from refute.guard._guard import Guard
from refute.guard._layers import Layer, guard_layer, list_guard_layers
from refute.guard._measure import MeasuredRow, StackMeasurement, measure_stack
from refute.guard._spec import (
    LayerSpec,
    LoadedStack,
    MeasureSettings,
    ProbeFitSpec,
    StackSpec,
    load_stack,
    parse_stack,
)
from refute.guard._types import Decision, GuardedReply, LayerRecord

__all__ = [
    "Decision",
    "Guard",
    "GuardedReply",
    "Layer",
    "LayerRecord",
    "LayerSpec",
    "LoadedStack",
    "MeasureSettings",
    "MeasuredRow",
    "ProbeFitSpec",
    "StackMeasurement",
    "StackSpec",
    "guard_layer",
    "list_guard_layers",
    "load_stack",
    "measure_stack",
    "parse_stack",
]
