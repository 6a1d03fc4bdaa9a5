"""GCG adversarial suffixes (Zou et al. 2023, "Universal and Transferable Adversarial Attacks").

Greedy Coordinate Gradient on a local ``hf`` model: find ``suffix_len`` tokens which, appended to
a request, make the model's reply most likely to begin with a target string ("Sure, here is").

One step:

1. the gradient of the target's cross-entropy with respect to a one-hot encoding of the suffix
   tokens, ``(L, V)``, normalised per position; tokens that are not allowed get ``+inf``;
2. the ``top_k`` tokens with the most negative gradient at each position are the candidates;
3. ``batch_size`` candidate suffixes, each with one random position replaced by one random
   candidate token (a ``torch.Generator`` seeded with ``seed``; nothing is seeded globally);
   candidates whose text does not re-tokenize to the same ids, alone and inside the rendered
   prompt, are dropped, so the tokens optimized are the tokens the model sees when the message
   ``prompt + suffix`` is sent;
4. one batched forward pass scores the candidates; the best replaces the current suffix when its
   loss is lower (greedy: ``losses`` never goes up).

The prompt is rendered and tokenised as the backend does for generation (`refute.models.encode`:
the chat template, or a base model's plain transcript after its BOS token) with the suffix at the
end of the user message; the part before the suffix is encoded once and its key/value cache
reused for every forward pass. Not allowed: special and added tokens (chat
markers, end of text), ids beyond the tokenizer's vocabulary, tokens that decode to nothing and,
unless ``allow_non_ascii``, tokens whose text is not printable ASCII (as in the paper).

Cost on a CPU. One step is one forward and backward pass on one sequence and one forward pass on
``batch_size`` sequences of ``suffix_len + len(after) + len(target)`` tokens (the prompt before the
suffix is cached). Settings that finish on a CPU: suffix_len 10, top_k 64, batch_size 32, 20 steps.
On the default model (Qwen2.5-Coder-0.5B-Instruct, bf16) on 2 cores of a Xeon with AMX, under the
heavy-job lock, one step took about 1 s (0.95 s over 20 steps; 0.75 s in ``bench/attacks.py``),
so 20 steps take about 20 s plus 1-2 s to build the allowed-token list; that run lowered the loss
of "Sure, here is" from 1.08 to 0.56. Steps took 5-8 s while other jobs shared the cores. Expect a
lower loss in 20 steps, not a working jailbreak: the paper runs 500 steps with batch 512 on a GPU.
"""

from __future__ import annotations

import copy
import inspect
import time
from dataclasses import asdict, dataclass
from typing import Any

from refute.errors import ConfigError
from refute.models._base import Message
from refute.models._encode import encode_text, render

__all__ = ["GCGResult", "gcg_attack"]

_SLOT = "\x00GCG-SUFFIX\x00"
_INIT_TOKENS = (" !", "!", " x", "x", " a")


@dataclass(frozen=True)
class GCGResult:
    """What a GCG run found, and how it got there."""

    suffix: str  #: the suffix text; ``prompt + suffix`` is the message to send
    suffix_ids: tuple[int, ...]
    losses: tuple[float, ...]  #: loss of the current suffix: before step 1, then after each step
    prompt: str
    target: str
    n_steps: int
    seed: int
    seconds: float
    rejected: int  #: candidates dropped because their text did not re-tokenize to the same ids

    @property
    def message(self) -> str:
        """The user message with the suffix appended."""
        return self.prompt + self.suffix

    @property
    def initial_loss(self) -> float:
        return self.losses[0]

    @property
    def best_loss(self) -> float:
        return self.losses[-1]

    @property
    def seconds_per_step(self) -> float:
        return self.seconds / max(1, self.n_steps)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


def _positive(name: str, value: Any, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
        raise ConfigError(f"gcg_attack: {name} must be an integer in [1, {hi}], got {value!r}")
    return value


def allowed_tokens(tokenizer: Any, n_embed: int, allow_non_ascii: bool = False) -> list[bool]:
    """Which token ids a suffix may use (see the module docstring)."""
    n_vocab = min(len(tokenizer), n_embed)
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    texts = tokenizer.batch_decode([[i] for i in range(n_vocab)])
    allowed = [False] * n_embed
    for i, text in enumerate(texts):
        if i in special or not text:
            continue
        allowed[i] = allow_non_ascii or (text.isascii() and text.isprintable())
    return allowed


def _split_template(tokenizer: Any, prompt: str, system: str | None) -> tuple[str, str]:
    messages = ([Message(role="system", content=system)] if system is not None else [])
    messages.append(Message(role="user", content=prompt + _SLOT))
    text = render(tokenizer, messages)
    if text.count(_SLOT) != 1:
        raise ConfigError("gcg_attack: the chat template did not keep the user message intact; "
                          "cannot place the suffix")
    before, after = text.split(_SLOT)
    return before, after


def _initial_suffix(tokenizer: Any, suffix_len: int, allowed: list[bool], init: str | None,
                    generator: Any, consistent: Any) -> list[int]:
    import torch

    if init is not None:
        ids = tokenizer(init, add_special_tokens=False).input_ids
        if len(ids) != suffix_len or not consistent(ids) or not all(allowed[i] for i in ids):
            raise ConfigError(f"gcg_attack: init {init!r} must encode to exactly suffix_len="
                              f"{suffix_len} allowed tokens that re-tokenize to themselves in the "
                              f"prompt (it gives {len(ids)} tokens)")
        return ids
    for text in _INIT_TOKENS:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        if len(ids) == 1 and allowed[ids[0]] and consistent(ids * suffix_len):
            return ids * suffix_len
    pool = torch.tensor([i for i, ok in enumerate(allowed) if ok])
    for _ in range(200):
        ids = pool[torch.randint(0, len(pool), (suffix_len,), generator=generator)].tolist()
        if consistent(ids):
            return ids
    raise ConfigError("gcg_attack: found no initial suffix that re-tokenizes to itself; pass init=")


def gcg_attack(backend: Any, prompt: str, *, target: str = "Sure, here is", n_steps: int = 20,
               suffix_len: int = 10, top_k: int = 64, batch_size: int = 32, seed: int = 0,
               system: str | None = None, init: str | None = None,
               allow_non_ascii: bool = False) -> GCGResult:
    """Optimize an adversarial suffix for ``prompt`` on a local model (``HFBackend``).

    ``system`` is an optional system message (None keeps the template's default). Returns the
    suffix, its token ids and the loss history; the model is left unchanged.
    """
    import torch

    model, tokenizer = getattr(backend, "model", None), getattr(backend, "tokenizer", None)
    if model is None or tokenizer is None:
        raise ConfigError("gcg_attack needs white-box access: an hf backend with .model and "
                          f".tokenizer (e.g. load_model('default')), got {type(backend).__name__}")
    n_steps = _positive("n_steps", n_steps, 1_000_000)
    suffix_len = _positive("suffix_len", suffix_len, 10_000)
    batch_size = _positive("batch_size", batch_size, 1_000_000)
    if not isinstance(target, str) or not target:
        raise ConfigError("gcg_attack: target must be a non-empty string such as 'Sure, here is'")
    embed = model.get_input_embeddings()
    weight = embed.weight  # (V, d)
    device = weight.device
    allowed = allowed_tokens(tokenizer, weight.shape[0], allow_non_ascii)
    top_k = min(_positive("top_k", top_k, 1_000_000), sum(allowed))
    generator = torch.Generator().manual_seed(int(seed))
    before_text, after_text = _split_template(tokenizer, prompt, system)
    def encode(text: str) -> list[int]:  # a piece of the prompt: no special tokens of its own
        return tokenizer(text, add_special_tokens=False).input_ids

    # the ids generation would be given (a base model's BOS first) are before + suffix + after
    before, after = encode_text(tokenizer, before_text), encode(after_text)

    def consistent(ids: list[int]) -> bool:
        """The suffix's text re-tokenizes to ``ids``, alone and inside the prompt as generation encodes it."""
        text = tokenizer.decode(ids)
        return encode(text) == ids and encode_text(tokenizer, before_text + text + after_text) == before + ids + after

    target_ids = tokenizer(target, add_special_tokens=False).input_ids
    n_target = len(target_ids)
    forbidden = torch.tensor([not ok for ok in allowed], device=device)  # (V,)
    after_t = torch.tensor([after], device=device)  # (1, Ta)
    target_t = torch.tensor([target_ids], device=device)  # (1, Tt)

    # transformers renamed ``past_key_values`` to ``cache`` (5.2x); speak whichever this one takes
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.no_grad():
        out = model(input_ids=torch.tensor([before], device=device), use_cache=True)
        prefix = getattr(out, "cache", None) or out.past_key_values

    def cache_for(rows: int) -> Any:
        cache = copy.deepcopy(prefix)
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        return cache

    def target_loss(logits: Any) -> Any:  # logits (B, Tt + 1, V) -> loss per row (B,)
        pred = logits[:, :-1].float()  # position t predicts target token t
        labels = target_t.expand(pred.shape[0], -1)
        ce = torch.nn.functional.cross_entropy(pred.transpose(1, 2), labels, reduction="none")
        return ce.mean(dim=1)

    def losses_of(suffixes: Any) -> Any:  # (B, L) ids -> (B,) losses
        rows = suffixes.shape[0]
        ids = torch.cat([suffixes, after_t.expand(rows, -1), target_t.expand(rows, -1)], dim=1)
        with torch.no_grad():
            out = model(input_ids=ids, **{cache_kw: cache_for(rows)}, use_cache=True,
                        logits_to_keep=n_target + 1)
        return target_loss(out.logits)

    def gradient(suffix: Any) -> Any:  # (L,) ids -> (L, V) normalised gradient
        one_hot = torch.zeros(suffix_len, weight.shape[0], dtype=weight.dtype, device=device)
        one_hot.scatter_(1, suffix[:, None], 1.0)
        one_hot.requires_grad_(True)
        embeds = torch.cat([(one_hot @ weight)[None], embed(after_t), embed(target_t)], dim=1)
        out = model(inputs_embeds=embeds, **{cache_kw: cache_for(1)}, use_cache=True,
                    logits_to_keep=n_target + 1)
        loss = target_loss(out.logits)[0]
        (grad,) = torch.autograd.grad(loss, one_hot)
        return grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    current = torch.tensor(_initial_suffix(tokenizer, suffix_len, allowed, init, generator, consistent),
                           device=device)
    history = [float(losses_of(current[None])[0])]
    rejected = 0
    start = time.perf_counter()
    for _ in range(n_steps):
        grad = gradient(current).float().masked_fill(forbidden[None, :], float("inf"))
        candidates = (-grad).topk(top_k, dim=1).indices.cpu()  # (L, k)
        positions = torch.randint(0, suffix_len, (batch_size,), generator=generator)
        choices = torch.randint(0, top_k, (batch_size,), generator=generator)
        batch = current.cpu().repeat(batch_size, 1)  # (B, L)
        batch[torch.arange(batch_size), positions] = candidates[positions, choices]
        keep = [i for i, row in enumerate(batch.tolist()) if consistent(row)]
        rejected += batch_size - len(keep)
        if keep:
            batch = batch[keep].to(device)
            losses = losses_of(batch)
            best = int(losses.argmin())
            if float(losses[best]) < history[-1]:
                current = batch[best]
                history.append(float(losses[best]))
                continue
        history.append(history[-1])
    seconds = time.perf_counter() - start
    ids = [int(i) for i in current.tolist()]
    return GCGResult(suffix=tokenizer.decode(ids), suffix_ids=tuple(ids), losses=tuple(history),
                     prompt=prompt, target=target, n_steps=n_steps, seed=int(seed), seconds=seconds,
                     rejected=rejected)
