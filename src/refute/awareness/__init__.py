"""Evaluation awareness: behaviour that changes when the model thinks it is being tested.

- ``compliance-gap`` (`refute awareness gap`, a study ``experiment`` run): the same requests under
  evaluation and deployment cues of several families (data files, `load_cues`), paired by prompt,
  with the gap's interval per family and overall, on harmful and benign sets.
- ``noise-injection`` (`refute awareness noise`): sandbagging detection (Tice et al. 2024): accuracy on
  capability tasks as Gaussian noise grows in the weights (``SPEC+noise:SCALE@SEED``), several seeds
  per scale; a rise above the noise-free accuracy beyond its interval flags the model.
- ``awareness-probe`` (`refute awareness probe`): a probe for evaluation-cued contexts fitted on some cue
  families and scored on held-out ones (AUROC with an interval); its direction ablated against a
  norm-matched random control, the compliance gap's change measured on held-out prompts and families.
- Model organisms to test those on (`refute awareness organism`): a password-locked model and a
  cue-trained refuser, LoRA adapters trained with `refute.train` from shipped benign data.

Cue families are applied by the ``cue`` transform, so every sample is an ordinary engine sample in
the store (resumable, cached, scored). Experiments register in `refute.gaming`'s registry and
report through the same `ExperimentResult`.
"""

from refute.awareness import _gap, _noise, _probe  # noqa: F401  (register the experiments)
from refute.awareness._cues import BUILTIN_CUES, SIDES, CueFamily, CueFile, Side, cue_chain, load_cues
from refute.awareness._gap import GapSettings, run_gap
from refute.awareness._noise import NoiseSettings, run_noise
from refute.awareness._organisms import ORGANISMS, PASSWORD, RECIPES, Organism, Recipe, build_organism, organism_rows
from refute.awareness._probe import ProbeSettings, run_probe

__all__ = ["BUILTIN_CUES", "ORGANISMS", "PASSWORD", "RECIPES", "SIDES", "CueFamily", "CueFile", "GapSettings",
           "NoiseSettings", "Organism", "ProbeSettings", "Recipe", "Side", "build_organism", "cue_chain", "load_cues",
           "organism_rows", "run_gap", "run_noise", "run_probe"]
