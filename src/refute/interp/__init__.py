"""Interpretability that tests causal claims: capture, directions, interventions, causal tests.

Activations are read from local `hf` models (``default``, ``hf:...``, ``gguf:...``) through hooks
on named sites (``resid_pre.L``, ``resid_post.L``, ``attn_out.L``, ``mlp_out.L``). Directions and
interventions come back to the engine as model variants, so their behavioural effect is measured
like any eval, on held-out prompts, against a norm-matched random control, with intervals.
torch loads only when a function needs it. The causal test's page is rendered by
`refute.report.write_causal_report`; the probe scorer (``probe``) registers through the ``refute``
entry-point group.
"""

from refute.interp._capture import Activations, ActivationStore, capture, render_prompts
from refute.interp._causal import CausalConfig, CausalResult, run_causal
from refute.interp._directions import (
    Direction,
    ablate,
    ablation_hooks,
    add_direction,
    addition_hooks,
    diff_in_means,
    orthogonalize_weights,
    random_like,
    save_orthogonalized,
)
from refute.interp._errors import InterpError
from refute.interp._patching import PatchResult, patch_sweep
from refute.interp._probe_fit import ProbeFit, fit_probe_on_prompts, score_messages
from refute.interp._probe_scorer import ProbeScorer
from refute.interp._probes import (
    LayerSweep,
    Probe,
    auroc,
    evaluate_probe,
    fit_probe,
    layer_sweep,
    split_indices,
)
from refute.interp._sae import (
    SAEConfig,
    SAEMetrics,
    ce_loss_recovered,
    feature_hooks,
    sae_metrics,
    top_contexts,
    train_sae,
)
from refute.interp._sae_file import SAEFile, load_sae, save_sae
from refute.interp._sites import Site, all_sites, find_layers, hooks, parse_site
from refute.interp._variant import Variant, ablated, feature_edited, steered

__all__ = [
    "ActivationStore",
    "Activations",
    "CausalConfig",
    "CausalResult",
    "Direction",
    "InterpError",
    "LayerSweep",
    "PatchResult",
    "Probe",
    "ProbeFit",
    "ProbeScorer",
    "SAEConfig",
    "SAEFile",
    "SAEMetrics",
    "Site",
    "Variant",
    "ablate",
    "ablated",
    "ablation_hooks",
    "add_direction",
    "addition_hooks",
    "all_sites",
    "auroc",
    "capture",
    "ce_loss_recovered",
    "diff_in_means",
    "evaluate_probe",
    "feature_edited",
    "feature_hooks",
    "find_layers",
    "fit_probe",
    "fit_probe_on_prompts",
    "hooks",
    "layer_sweep",
    "load_sae",
    "orthogonalize_weights",
    "parse_site",
    "patch_sweep",
    "random_like",
    "render_prompts",
    "run_causal",
    "sae_metrics",
    "save_orthogonalized",
    "save_sae",
    "score_messages",
    "split_indices",
    "steered",
    "top_contexts",
    "train_sae",
]
