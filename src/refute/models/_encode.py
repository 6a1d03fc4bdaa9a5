"""Chat messages to the token ids a local model sees: the one rendering and tokenisation.

Generation (the ``hf`` backend), activation capture, probes, patching, SAE measures and GCG all
tokenise through here, so a direction or probe is fitted on exactly the inputs generation feeds
the model:

* a model with a chat template renders the messages with it (which writes its own special
  tokens, BOS included where the template has one); the text is tokenised with no special tokens
  added;
* a base model (no chat template) gets a plain transcript, ``"User: ...\\n\\nAssistant:"``, and
  the tokenizer's special tokens are added: a BOS token first wherever the tokenizer has one
  (Gemma, for one, degrades badly without it).

`render` gives the text, `encode_texts` the ids of rendered texts, `encode` both in one step.
No torch here: the tokenizer is any Hugging Face tokenizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from refute.models._base import Message

__all__ = ["encode", "encode_text", "encode_texts", "has_chat_template", "render"]


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template (then no special tokens are added)."""
    return bool(getattr(tokenizer, "chat_template", None))


def _as_dict(m: Message | Mapping[str, str]) -> dict[str, str]:
    if isinstance(m, Message):
        return {"role": m.role, "content": m.content}
    return {"role": m["role"], "content": m["content"]}


def render(tokenizer: Any, messages: Sequence[Message | Mapping[str, str]], *,
           add_generation_prompt: bool = True) -> str:
    """The text a causal LM sees for ``messages``: its chat template, or a plain transcript.

    ``add_generation_prompt`` ends the text where the assistant's reply starts (the template's
    assistant header; ``"\\n\\nAssistant:"`` in a transcript).
    """
    as_dicts = [_as_dict(m) for m in messages]
    if has_chat_template(tokenizer):
        text: str = tokenizer.apply_chat_template(as_dicts, add_generation_prompt=add_generation_prompt,
                                                  tokenize=False)
        return text
    # Base models have no template: a plain transcript that ends where the assistant speaks.
    text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in as_dicts)
    return text + "\n\nAssistant:" if add_generation_prompt else text


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of rendered ``texts`` (from `render`), special tokens added for base models only."""
    if not texts:
        return []
    ids: list[list[int]] = tokenizer(list(texts), add_special_tokens=not has_chat_template(tokenizer)).input_ids
    return ids


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of one rendered text (`encode_texts`)."""
    return encode_texts(tokenizer, [text])[0]


def encode(tokenizer: Any, messages: Sequence[Message | Mapping[str, str]], *,
           add_generation_prompt: bool = True) -> list[int]:
    """The token ids a local model is given for ``messages``: `render`, then `encode_text`."""
    return encode_text(tokenizer, render(tokenizer, messages, add_generation_prompt=add_generation_prompt))
