"""SQuAD exact match and F1 per question, from a span model's logits over context windows.

A question whose context is longer than a window is split into several windows
(:func:`xnli_study.training.encode_spans`). :func:`best_answers` picks each question's answer over
all its windows, as the reference SQuAD post-processing does: the highest-scoring span (start
logit + end logit) inside the context, at most ``max_answer_tokens`` long; for SQuAD 2.0 the empty
answer when the no-answer score (the ``[CLS]`` start + end logits, lowest over the windows) beats
the best span. :func:`squad_scores` compares the answers with the gold ones after the official
normalisation (lower case, no punctuation, no articles, single spaces).

References:
    Rajpurkar, Zhang, Lopyrev, Liang (2016). SQuAD: 100,000+ Questions for Machine Comprehension
        of Text (exact match and F1; the v1.1 evaluation script).
    Rajpurkar, Jia, Liang (2018). Know What You Don't Know: Unanswerable Questions for SQuAD
        (the v2.0 rule: an unanswerable question is right only with the empty answer).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .errors import DataError
from .models import pick_device

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, punctuation and articles removed, spaces
    collapsed.

    >>> normalize_answer("The  Blue Lantern!")
    'blue lantern'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0. An empty gold
    list means unanswerable: only the empty prediction is right.

    >>> exact_match("the lantern", ["Lantern"]), exact_match("", [])
    (1.0, 1.0)
    """
    golds = list(gold) or [""]
    return float(max(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def _f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:  # an empty side scores 1 only when both are empty
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, gold: Sequence[str]) -> float:
    """Token-overlap F1 of the normalised prediction, the best over the gold answers (in [0, 1]).

    >>> round(f1("blue lantern at dusk", ["the blue lantern"]), 3)
    0.667
    """
    return max(_f1(prediction, g) for g in (list(gold) or [""]))


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean ``exact_match`` and ``f1`` (in [0, 1]) over questions; ``questions`` counts them."""
    if len(predictions) != len(golds) or not golds:
        raise ValueError("squad_scores needs one prediction per question, and at least one question")
    return {"exact_match": float(np.mean([exact_match(p, g) for p, g in zip(predictions, golds)])),
            "f1": float(np.mean([f1(p, g) for p, g in zip(predictions, golds)])),
            "questions": len(golds)}


def best_answers(start_logits: np.ndarray, end_logits: np.ndarray, *, windows: Sequence[int],
                 offsets: Sequence[Sequence[tuple[int, int] | None]], contexts: Sequence[str],
                 unanswerable: bool, max_answer_tokens: int = 30, top_k: int = 20) -> list[str]:
    """Each question's answer text, chosen over all its windows.

    Args:
        start_logits, end_logits: ``(n_windows, window_length)`` arrays (padding positions may hold
            anything: they have no offset).
        windows: for each window, the index of its question (into ``contexts``).
        offsets: for each window, per token, the ``(start, end)`` character span in the context, or
            None for tokens outside the context (question, special tokens, padding).
        contexts: the context of each question.
        unanswerable: SQuAD 2.0 rule: answer ``""`` when the lowest no-answer score of the
            question's windows (token 0 start + end) beats its best span.
        max_answer_tokens: longest span considered; top_k: start and end candidates per window.
    Returns:
        one string per question (``""`` for no answer).
    """
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for w, q in enumerate(windows):
        s, e = np.asarray(start_logits[w]), np.asarray(end_logits[w])
        spans = offsets[w]
        null[q] = min(null.get(q, np.inf), float(s[0] + e[0]))
        n = len(spans)
        starts = [i for i in np.argsort(s[:n])[::-1][:top_k] if spans[i] is not None]
        ends = [j for j in np.argsort(e[:n])[::-1][:top_k] if spans[j] is not None]
        for i in starts:
            for j in ends:
                if j < i or j - i + 1 > max_answer_tokens:
                    continue
                score = float(s[i] + e[j])
                if q not in best or score > best[q][0]:
                    best[q] = (score, contexts[q][spans[i][0]:spans[j][1]])
    answers = []
    for q in range(len(contexts)):
        score, text = best.get(q, (-np.inf, ""))
        if unanswerable and null.get(q, -np.inf) > score:
            text = ""
        answers.append(text)
    return answers


def span_windows(tokenizer, frame: pd.DataFrame, *, max_length: int, stride: int | None = None):
    """Tokenise an extractive-QA frame (question ``text_a``, context ``text_b``) into windows over
    the context, question first; a context longer than a window is split into windows that share
    ``stride`` tokens (a quarter of ``max_length`` by default). Returns the tokenizer's encoding,
    with ``offset_mapping`` and ``overflow_to_sample_mapping`` (the question of each window).
    Needs a fast tokenizer (character offsets)."""
    if not getattr(tokenizer, "is_fast", False):
        raise DataError("extractive QA needs a fast tokenizer (character offsets); this encoder's "
                        "tokenizer is not one")
    stride = max_length // 4 if stride is None else stride
    try:
        return tokenizer(frame["text_a"].tolist(), frame["text_b"].tolist(), truncation="only_second",
                         max_length=max_length, stride=stride, return_overflowing_tokens=True,
                         return_offsets_mapping=True)
    except Exception as err:  # the tokenizer refuses questions longer than a window
        raise DataError(f"extractive QA: cannot fit question and context into max_length {max_length} "
                        f"({err}); raise training.intermediate.max_length") from None


def context_offsets(enc, window: int) -> list[tuple[int, int] | None]:
    """Per token of ``window``, its character span in the context, or None outside the context."""
    sequence = enc.sequence_ids(window)
    return [tuple(span) if s == 1 else None for span, s in zip(enc["offset_mapping"][window], sequence)]


@torch.no_grad()
def evaluate_spans(model, tokenizer, frame: pd.DataFrame, *, max_length: int, unanswerable: bool,
                   device: str = "auto", batch_size: int = 32) -> dict[str, float]:
    """SQuAD ``exact_match`` and ``f1`` (in [0, 1], per question) of a span model on ``frame``
    (the task frame of ``xnli_study.tasks``: ``answer_text`` is the gold answer, empty when
    unanswerable), best span over each question's windows (:func:`best_answers`)."""
    enc = span_windows(tokenizer, frame, max_length=max_length)
    dev = pick_device(device)
    model = model.to(dev).eval()
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    starts, ends = [], []
    for first in range(0, len(enc["input_ids"]), batch_size):
        batch = tokenizer.pad({k: enc[k][first:first + batch_size] for k in keys}, return_tensors="pt")
        out = model(**{k: v.to(dev) for k, v in batch.items()})
        starts += list(out.start_logits.float().cpu().numpy())
        ends += list(out.end_logits.float().cpu().numpy())
    windows = list(enc["overflow_to_sample_mapping"])
    answers = best_answers(starts, ends, windows=windows,
                           offsets=[context_offsets(enc, w) for w in range(len(windows))],
                           contexts=frame["text_b"].tolist(), unanswerable=unanswerable)
    golds = [[a] if a else [] for a in frame["answer_text"].fillna("")]
    return squad_scores(answers, golds)
