"""Losses on completion tokens: SFT cross-entropy, and DPO (Rafailov et al. 2023, "Direct Preference
Optimization: Your Language Model is Secretly a Reward Model", eq. 7).

Labels follow `refute.train._tokens`: the id a position should be followed by at completion
positions, -100 elsewhere. Position t's logits predict token t + 1, so logits and labels are
shifted by one before they meet. Log-softmax runs in float32 whatever the model's dtype.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from refute.train._tokens import IGNORE

if TYPE_CHECKING:
    import torch

__all__ = ["dpo_loss", "sequence_logprobs", "sft_loss_sum"]


def sft_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy over completion tokens (divide by their count for the mean)."""
    import torch.nn.functional as F

    shifted = logits[:, :-1].float()  # (B, T-1, V): position t predicts token t + 1
    targets = labels[:, 1:]  # (B, T-1)
    return F.cross_entropy(shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(completion | prompt) per sequence: the sum of its completion tokens' log-probabilities. (B,)"""
    import torch

    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
    targets = labels[:, 1:]  # (B, T-1)
    keep = targets != IGNORE
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    return (picked * keep).sum(dim=-1)


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-pair DPO loss, ``-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))``. (B,)

    Arguments are sequence log-probabilities (`sequence_logprobs`) under the policy and the frozen
    reference. At the start, when the policy is the reference, every pair's loss is log 2.
    """
    import torch.nn.functional as F

    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin)
