"""The gate applied to studies: the policy a study names, and a policy applied to a stored study.

Studies sit below the gate, so `refute.study.run_study` does not import it: it is handed
`study_gate` (a `refute.study.PolicyGate`) by its caller, the command line or the demo.
"""

from __future__ import annotations

from typing import Any

from refute.errors import ConfigError
from refute.gate._decide import GateDecision, decide
from refute.gate._policy import LoadedPolicy, load_policy
from refute.store import Store
from refute.study import LoadedStudy, Measurement, resolve_study, stored_measurements

__all__ = ["StudyGate", "gate_study", "study_gate"]


class StudyGate:
    """Applies the deployment policy a study names (its ``policy:`` file); a `PolicyGate`."""

    def _policy(self, study: LoadedStudy) -> LoadedPolicy:
        if study.spec.policy is None:
            raise ConfigError(f"{study.path}: the study names no policy")
        policy = load_policy(study.resolve_file(study.spec.policy))
        policy.check_measures(list(study.spec.measures), study.path, study.ratio_measures)
        return policy

    def check(self, study: LoadedStudy) -> None:
        """Raise when the policy is malformed or names measures the study lacks."""
        self._policy(study)

    def decide(self, study: LoadedStudy, measures: dict[str, Measurement | None]) -> tuple[dict[str, Any], str]:
        policy = self._policy(study)
        return decide(policy, measures).to_dict(), policy.doc.text


#: The gate `run_study` is handed to apply a study's own policy.
study_gate = StudyGate()


def gate_study(store: Store, policy: LoadedPolicy, target: str) -> GateDecision:
    """Apply ``policy`` to the measures of a stored study (file or hash), recomputed from the store."""
    study, result = resolve_study(
        store, target, check=lambda s: policy.check_measures(list(s.spec.measures), s.path, s.ratio_measures))
    return decide(policy, stored_measurements(store, study, result))
