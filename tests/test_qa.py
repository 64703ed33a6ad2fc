"""SQuAD exact match and F1 against the official definitions, and answers chosen over windows."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from xnli_study import qa


def test_official_normalisation_and_scores():
    assert qa.normalize_answer("The Eiffel  Tower.") == "eiffel tower"
    assert qa.exact_match("eiffel tower", ["The Eiffel Tower", "Paris"]) == 1.0
    assert qa.exact_match("tower", ["The Eiffel Tower"]) == 0.0
    # F1: 'eiffel tower paris' against 'eiffel tower': precision 2/3, recall 1
    assert qa.f1("Eiffel Tower, Paris", ["the Eiffel Tower"]) == pytest.approx(0.8)
    assert qa.f1("Paris", ["London", "paris"]) == 1.0  # the best gold answer counts
    # SQuAD 2.0: an unanswerable question is right only with the empty answer
    assert qa.exact_match("", []) == 1.0 and qa.f1("", []) == 1.0
    assert qa.exact_match("something", []) == 0.0 and qa.f1("something", []) == 0.0
    assert qa.f1("", ["an answer"]) == 0.0
    scores = qa.squad_scores(["eiffel tower", "", "rome"], [["The Eiffel Tower"], [], ["Paris"]])
    assert scores == {"exact_match": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3), "questions": 3}


def _logits(n, peaks):
    row = np.full(n, -5.0)
    for position, value in peaks.items():
        row[position] = value
    return row


def test_best_span_over_windows_and_the_no_answer_rule():
    contexts = ["a blue lantern", "the old mill"]
    # question 0 has two windows: the second holds the better span ("blue lantern", tokens 2-3)
    offsets = [[None, None, (0, 1), (2, 6)], [None, None, (2, 6), (7, 14)], [None, None, (0, 3), (4, 7)]]
    starts = [_logits(4, {0: 0.0, 2: 1.0}), _logits(4, {0: 0.5, 2: 3.0}), _logits(4, {0: 4.0, 3: 1.0})]
    ends = [_logits(4, {0: 0.0, 3: 1.0}), _logits(4, {0: 0.5, 3: 3.0}), _logits(4, {0: 4.0, 3: 1.0})]
    common = dict(windows=[0, 0, 1], offsets=offsets, contexts=contexts)
    answers = qa.best_answers(starts, ends, unanswerable=False, **common)
    assert answers == ["blue lantern", "old"]  # v1.1: always the best span
    answers = qa.best_answers(starts, ends, unanswerable=True, **common)
    # question 1's no-answer score (8) beats its best span (2): empty; question 0's span (6) beats 0
    assert answers == ["blue lantern", ""]
    # an end before its start is never a span
    reversed_span = qa.best_answers([_logits(4, {3: 9.0})], [_logits(4, {2: 9.0})], windows=[0],
                                    offsets=[[None, None, (0, 4), (5, 9)]], contexts=["abcd efgh"],
                                    unanswerable=False)
    assert reversed_span != ["efgh abcd"] and reversed_span[0] in ("abcd", "efgh", "abcd efgh")


def test_docstring_examples_run():
    result = doctest.testmod(qa, verbose=False)
    assert result.attempted >= 3 and result.failed == 0


def test_heldout_exact_match_of_a_span_model_on_its_own_answers(tiny):
    """A span model whose logits point at the gold tokens scores exact match 1."""
    import torch

    from xnli_study.training import encode_spans

    tokenizer, _ = tiny
    frame = pd.DataFrame({"text_a": ["Who bought it?", "Where?"], "text_b": ["Anna bought a lamp .", "in the park ."],
                          "answer_text": ["Anna", "park"], "answer_start": [0, 7], "label": [1, 1]})
    windows = encode_spans(tokenizer, frame, max_length=32)

    class Oracle(torch.nn.Module):
        def forward(self, input_ids, **_):
            s = torch.full(input_ids.shape, -9.0)
            e = torch.full(input_ids.shape, -9.0)
            for i in range(len(input_ids)):
                s[i, windows[i]["start_positions"]] = 9.0
                e[i, windows[i]["end_positions"]] = 9.0
            return type("Out", (), {"start_logits": s, "end_logits": e})()

    scores = qa.evaluate_spans(Oracle(), tokenizer, frame, max_length=32, unanswerable=True, device="cpu")
    assert scores["exact_match"] == 1.0 and scores["f1"] == 1.0
