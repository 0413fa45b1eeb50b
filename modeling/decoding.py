"""Shared pieces of answer decoding: the teacher-forcing labels of an answer and the probability of a generated one.

>>> import torch
>>> sequences = torch.tensor([[5, 2, 0]])            # answer, eos (id 2), then padding
>>> step_logits = [torch.log(torch.tensor([[.1, .1, .1, .1, .1, .5]])), torch.log(torch.tensor([[.2, .2, .6, 0, 0, 0]])),
...                torch.zeros(1, 6)]
>>> round(sequence_probability(sequences, step_logits, eos_token_id=2).item(), 3)
0.3
"""

from __future__ import annotations

import torch


def answer_labels(tokenizer, answers) -> torch.Tensor:
    """Answer strings -> `labels` `(batch, tokens + 1)`: ids then eos, right-padded with -100."""
    eos = tokenizer.eos_token_id
    ids = [tokenizer(answer, add_special_tokens=False)["input_ids"] + [eos] for answer in answers]
    width = max(len(row) for row in ids)
    return torch.tensor([row + [-100] * (width - len(row)) for row in ids], dtype=torch.long)


def sequence_probability(sequences: torch.Tensor, step_scores, eos_token_id: int | None) -> torch.Tensor:
    """Product over steps of each chosen token's probability, steps after a row's eos excluded.

    Args:
        sequences: `(batch, steps)` generated ids. step_scores: one `(batch, vocab)` logits tensor per step.
    Returns `(batch,)` probabilities (float32).
    """
    log_score = torch.zeros(sequences.shape[0], device=sequences.device)
    finished = torch.zeros_like(log_score, dtype=torch.bool)
    for step, scores in enumerate(step_scores):
        chosen = sequences[:, step]
        step_log_prob = scores.float().log_softmax(dim=-1).gather(1, chosen[:, None]).squeeze(1)
        log_score = log_score + torch.where(finished, torch.zeros_like(step_log_prob), step_log_prob)
        finished = finished | (chosen == eos_token_id)
    return log_score.exp()


__all__ = ["answer_labels", "sequence_probability"]
