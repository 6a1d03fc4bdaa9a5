"""Tiny random-weight causal LMs with a real tokenizer, built in-process (no download)."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "How do I bake bread? Mix flour, water, salt and yeast, then let it rise.",
    "I'm sorry, but I can't assist with that.",
    "What is the capital of France? Paris. What is 2 + 2? 4.",
    "The quick brown fox jumps over the lazy dog 0123456789.",
] * 20


BOS = "<|bos|>"


def build_tokenizer(chat_template: bool = True):
    """A byte-level BPE tokenizer: with a chat template and no BOS token (like Qwen), or, with
    ``chat_template=False``, a base model's: no template, and a BOS token the tokenizer puts first
    whenever special tokens are added (like Gemma or Llama)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + ([] if chat_template else [BOS])
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    if not chat_template:
        bos_id = tok.token_to_id(BOS)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", bos_token=None if chat_template else BOS)
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(directory: Path, seed: int = 0, arch: str = "qwen2", chat_template: bool = True,
                     init_std: float = 0.02) -> Path:
    """Save a 2-layer random model of the given family and its tokenizer into ``directory``.

    ``init_std`` is the weights' initial spread: the default 0.02 gives nearly flat logits (greedy
    decoding repeats one token); about 1 makes every token depend on position and context.

    ``chat_template=False`` builds a base model: no chat template, a BOS token first in every
    encoded prompt (see `build_tokenizer`).
    """
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, Qwen2Config

    tokenizer = build_tokenizer(chat_template)
    torch.manual_seed(seed)
    if arch == "qwen2":
        config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=512, tie_word_embeddings=True, initializer_range=init_std,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    else:
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=512,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
