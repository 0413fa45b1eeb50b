"""A word-level tokenizer for the synthetic audio-visual world (the tiny preset's LLM vocabulary)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "eos_token": "<eos>"}  # ids 0, 1, 2


def build_word_tokenizer(texts: Iterable[str], max_vocab_size: int = 256) -> PreTrainedTokenizerFast:
    """Lower-cased words and punctuation of `texts` -> a `PreTrainedTokenizerFast` with `<pad>`=0, `<unk>`=1, `<eos>`=2.

    Words are numbered in order of first appearance, so the same texts give the same ids.

    >>> tokenizer = build_word_tokenizer(["Is the drum playing?", "yes"])
    >>> tokenizer("is the drum playing?")["input_ids"]
    [3, 4, 5, 6, 7]
    """
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS.values())}
    for text in texts:
        for word in re.findall(r"\w+|[^\w\s]", text.lower()):
            if word not in vocab:
                vocab[word] = len(vocab)
    if len(vocab) > max_vocab_size:
        raise ValueError(f"`texts` hold {len(vocab)} distinct tokens; `max_vocab_size` allows {max_vocab_size}.")
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, padding_side="right", **SPECIAL_TOKENS)


__all__ = ["SPECIAL_TOKENS", "build_word_tokenizer"]
