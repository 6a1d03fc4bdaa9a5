"""Training rows to token ids: the prompt as generation sees it, the completion after it, then EOS.

The prompt (system and user messages) is rendered with the model's chat template and tokenised by
`refute.models.encode`, ending at the assistant header: the very ids the ``hf`` backend generates
from. The completion is tokenised on its own (no special tokens) and followed by the EOS token, so
the model learns to stop; a reply marked ``ends: false`` (cut at a token limit) gets no EOS: the
model learns how it starts, not a false stop. Only completion tokens carry a loss (labels are
-100 on the prompt and the padding). A row longer than ``max_length`` loses the end of its completion; a prompt that
leaves no room for any completion token is an error naming its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from refute.errors import DatasetError
from refute.models import encode
from refute.train._data import SFTRow, TrainData

if TYPE_CHECKING:
    import torch

__all__ = ["IGNORE", "Batch", "Example", "collate", "encode_data", "eos_id"]

IGNORE = -100  # the label of a token that carries no loss


@dataclass(frozen=True)
class Example:
    """One row's ids: the prompt, and its completions (one for SFT; chosen then rejected for DPO)."""

    prompt: tuple[int, ...]
    completions: tuple[tuple[int, ...], ...]
    truncated: bool


@dataclass(frozen=True)
class Batch:
    """Right-padded sequences; ``labels`` hold the next-token targets' ids at completion positions."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    labels: torch.Tensor  # (B, T), IGNORE outside completions
    tokens: int  # non-padding tokens
    completion_tokens: int

    def to(self, device: Any) -> Batch:
        """The same batch on ``device``."""
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device),
                     self.tokens, self.completion_tokens)


def eos_id(tokenizer: Any, model: Any) -> int:
    """The token that ends a reply: the tokenizer's EOS, else the model's first generation EOS."""
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    eos = getattr(model.generation_config, "eos_token_id", None)
    first = eos[0] if isinstance(eos, list) and eos else eos
    if not isinstance(first, int):
        raise DatasetError("the tokenizer and the model name no EOS token; a completion could not end")
    return first


def encode_data(tokenizer: Any, data: TrainData, max_length: int, eos: int) -> list[Example]:
    """Every row's `Example`, in file order."""
    examples = []
    for row, line in zip(data.rows, data.lines, strict=True):
        messages = ([{"role": "system", "content": row.system}] if row.system is not None else []) + \
            [{"role": "user", "content": row.prompt}]
        prompt = tuple(encode(tokenizer, messages))
        room = max_length - len(prompt)
        if room < 1:
            raise DatasetError(f"the prompt is {len(prompt)} tokens, and --max-length {max_length} leaves no room "
                               "for the completion", path=str(data.path), line=line, field="prompt",
                               hint="raise --max-length or shorten the prompt")
        texts = (row.completion,) if isinstance(row, SFTRow) else (row.chosen, row.rejected)
        end = (eos,) if not isinstance(row, SFTRow) or row.ends else ()  # an open reply gets no EOS
        full = [(*tokenizer(text, add_special_tokens=False).input_ids, *end) for text in texts]
        examples.append(Example(prompt, tuple(c[:room] for c in full), any(len(c) > room for c in full)))
    return examples


def collate(sequences: Sequence[tuple[tuple[int, ...], tuple[int, ...]]], pad_id: int) -> Batch:
    """(prompt, completion) pairs to one right-padded `Batch`."""
    import torch

    width = max(len(p) + len(c) for p, c in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
    for i, (prompt, completion) in enumerate(sequences):
        n_p, n = len(prompt), len(prompt) + len(completion)
        ids[i, :n] = torch.tensor(prompt + completion)
        mask[i, :n] = 1
        labels[i, n_p:n] = torch.tensor(completion)
    n_completion = sum(len(c) for _, c in sequences)
    return Batch(ids, mask, labels, int(mask.sum()), n_completion)
