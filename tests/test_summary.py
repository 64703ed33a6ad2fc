"""``summary.json`` from a small run folder written by hand, and the alignment changes between stages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from xnli_study import evaluation, narrative, stages, study, summary as summaries
from xnli_study.files import write_table
from xnli_study.runfolder import RunFolder


def _predictions() -> pd.DataFrame:
    """Two conditions, one seed, en and fr, four parallel items each; known correctness."""
    correct = {("none", "en"): [1, 1, 1, 0], ("none", "fr"): [1, 0, 0, 0],
               ("sst2", "en"): [1, 1, 0, 0], ("sst2", "fr"): [1, 1, 1, 0]}
    rows = []
    for (cond, lang), hits in correct.items():
        for i, hit in enumerate(hits):
            label = i % 3
            pred = label if hit else (label + 1) % 3
            probs = np.eye(3)[pred]
            rows.append({"condition": cond, "seed": 0, "lang": lang, "id": f"test-{i}", "label": label,
                         "pred": pred, "correct": bool(hit), "p0": probs[0], "p1": probs[1], "p2": probs[2]})
    return pd.DataFrame(rows)


def _alignment() -> pd.DataFrame:
    rows = []
    values = {("pretrained", "-", -1): [0.2, 0.4, 0.3], ("intermediate", "sst2", 0): [0.1, 0.5, 0.2],
              ("final", "none", 0): [0.2, 0.3, 0.6], ("final", "sst2", 0): [0.2, 0.35, 0.7]}
    for (stage, cond, seed), by_layer in values.items():
        label = "P" if stage == "pretrained" else f"{stage[0].upper()}[{cond}] seed {seed}"
        for layer, value in enumerate(by_layer):
            for metric, v in (("retrieval", value), ("retrieval_centered", value + 0.1), ("cka", value / 2),
                              ("cosine_margin", value / 4)):
                rows.append({"checkpoint": label, "stage": stage, "condition": cond, "seed": seed,
                             "layer": layer, "lang": "fr", "metric": metric, "value": v})
    return pd.DataFrame(rows)


@pytest.fixture
def hand_made_run(tmp_path, smoke_yaml):
    data = yaml.safe_load(smoke_yaml.read_text())
    data.update(output_dir=str(tmp_path), run_name="hand", seeds=[0], languages=["en", "fr"],
                stats={"resamples": 400, "seed": 0})
    data["alignment"]["headline_layer"] = 2
    data["mnli"]["max_examples"] = 800
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(data))
    folder = RunFolder(tmp_path / "hand")
    preds = _predictions()
    acc = evaluation.accuracy_table(preds)
    tables = {
        "predictions": preds, "accuracy": acc, "accuracy_mean": evaluation.mean_over_seeds(acc),
        "transfer_summary": evaluation.transfer_summary(acc, languages=["en", "fr"]),
        "alignment": _alignment(),
        "training_data": pd.DataFrame({"dataset": ["mnli", "sst2"], "rows_read": [1500, 900],
                                       "dropped_no_consensus": [10, 0], "dropped_unusable": [0, 100],
                                       "used": [800, 720]}),
        "intermediate_results": pd.DataFrame({"condition": ["sst2"], "seed": [0], "train_examples": [648],
                                              "heldout_examples": [72], "heldout_accuracy": [0.5],
                                              "heldout_metric": ["accuracy"], "chance": [0.5]}),
        "probe_set": pd.DataFrame({"sid": ["p:1", "p:2", "p:1", "p:2"], "lang": ["en", "en", "fr", "fr"]}),
        "selection": pd.DataFrame({"condition": ["none", "sst2"], "seed": [0, 0], "dev_en_accuracy": [0.9, 0.7]}),
    }
    for key, frame in tables.items():
        write_table(folder.table(key), frame)
    config = stages.StageRun("data", params_path=str(params)).config
    for stage in ("data", "intermediate", "transfer", "alignment"):
        stages.write_record(folder.root, stage, config, outputs=[], seconds=0,
                            summary={"n_layers": 2} if stage == "alignment" else None)
    return stages.StageRun("report", params_path=str(params))


def test_summary_of_a_hand_made_run(hand_made_run):
    summary = summaries.build_summary(hand_made_run)
    assert summary == json.loads(hand_made_run.folder.summary.read_text())
    assert summary["xnli_accuracy"] == {"none": {"en": 0.75, "fr": 0.25}, "sst2": {"en": 0.5, "fr": 0.75}}
    assert summary["xnli_accuracy_avg"]["sst2"] == {"avg": 0.625, "avg_non_en": 0.75}
    comparison = summary["comparisons"]["sst2"]
    assert comparison["fr"]["delta"] == 0.5 and comparison["en"]["delta"] == -0.25
    assert comparison["avg"]["delta"] == pytest.approx(0.125)
    assert summary["transfer"]["none"]["transfer_gap"] == 0.5
    assert summary["sizes"] == {"mnli": {"trained": 800, "available": 1490},
                                "tasks": {"sst2": {"trained": 648, "held_out": 72, "available": 800}},
                                "probe_sentences_per_language": 2}
    assert summary["setting"] == {"none": "zero-shot", "sst2": "zero-shot", "parallel_align": "zero-shot"}
    assert summary["intermediate"]["sst2"] == {"metric": "accuracy", "score": 0.5, "f1": None, "chance": 0.5,
                                               "held_out": 72, "pretrained": None}
    # the MNLI cap bound (1,490 rows, 800 kept); sst2's did not (800 rows, cap 800)
    assert summary["design"]["subsampled"] == {"mnli": 800}
    assert not summary["design"]["random_init"]  # the smoke profile pretrains its tiny encoder
    shares = summary["label_shares"]
    assert shares["gold"]["fr"] == {"entailment": 0.5, "neutral": 0.25, "contradiction": 0.25}
    # none's French predictions: item 0 right (label 0), items 1-3 wrong (labels 2, 0, 1 predicted)
    assert shares["predicted"]["none"]["fr"] == {"entailment": 0.5, "neutral": 0.25, "contradiction": 0.25}
    assert summary["design"]["encoder_kind"] == "tiny" and summary["design"]["synthetic"]
    assert summary["stats"]["seeds"] == 1 and "not claimed" in summary["stats"]["significance"]
    assert all(row["significant"] is None for by_lang in summary["comparisons"].values() for row in by_lang.values())
    assert summary["items_per_language"] == 4
    alignment = summary["alignment"]
    assert alignment["headline_layer"] == 2 and alignment["n_layers"] == 2
    assert alignment["at_headline_layer"]["P"]["retrieval"] == 0.3
    assert alignment["at_headline_layer"]["F[sst2]"]["cka"] == 0.35
    assert alignment["best_layer_pretrained_retrieval"] == 1
    assert alignment["retrieval_at_best_layer"]["F[none]"] == {"layer": 2, "fr": 0.6}
    assert summary["selection_dev_en"] == {"none": {"0": 0.9}, "sst2": {"0": 0.7}}
    # one (condition, language) point: retrieval +0.1 at layer 2, accuracy +0.5 in French
    points = hand_made_run.read_table("alignment_vs_transfer")
    assert points[["alignment_change", "accuracy_change"]].values.round(6).tolist() == [[0.1, 0.5]]


def test_alignment_changes_match_final_encoders_by_seed():
    rows = [("pretrained", "-", -1, 0.2),
            ("intermediate", "t", 0, 0.3), ("intermediate", "t", 1, 0.5),
            ("final", "none", 0, 0.4),  # the baseline has seed 0 only
            ("final", "t", 0, 0.5), ("final", "t", 1, 0.9)]
    table = pd.DataFrame([{"stage": s, "condition": c, "seed": k, "layer": 1, "lang": "fr", "metric": "cka",
                           "value": v} for s, c, k, v in rows])
    changes = study.alignment_changes(table).set_index("comparison")["delta"]
    assert changes["intermediate - pretrained"] == pytest.approx(0.2)  # mean(I) - P
    # matched by seed: only seed 0 has a baseline, so 0.5 - 0.4; unmatched means would give 0.3
    assert changes["final - final[none]"] == pytest.approx(0.1)


def _planted_config(**changes):
    from xnli_study.config import parse_params

    base = {"profile": "t", "run_name": "t", "conditions": ["none", "sst2", "parallel_align"],
            "tasks": {"sst2": {"source": "sample"}, "parallel_align": {"source": "sample"}}}
    return parse_params({**base, **changes})


def _planted_inputs(fr: float, ci_low: float):
    langs = {"en": 0.95, "fr": fr, "es": 0.5, "de": 0.46, "tr": 0.42, "ru": 0.36, "zh": 0.34}
    comparisons = pd.DataFrame([
        {"condition": "sst2", "lang": "avg_non_en", "delta": 0.01, "ci_low": -0.01, "ci_high": 0.03},
        {"condition": "parallel_align", "lang": "avg_non_en", "delta": 0.04, "ci_low": ci_low, "ci_high": 0.07}])
    alignment = {"F[none]": {"retrieval": 0.05}, "F[parallel_align]": {"retrieval": 0.2}}
    return {"none": langs}, comparisons, alignment


def test_planted_answer_is_checked_against_the_run():
    config = _planted_config(languages=["en", "fr", "es", "de", "tr", "ru", "zh"])
    found = summaries.planted(config, *_planted_inputs(fr=0.55, ci_low=0.01))
    assert found["anchor_groups"]["high"]["languages"] == ["fr", "es", "de"]
    assert found["anchor_groups"]["high"]["baseline_accuracy"] == pytest.approx((0.55 + 0.5 + 0.46) / 3)
    assert found["anchor_groups"]["low"]["languages"] == ["ru", "zh"]
    assert found["gradient"] == {"high_anchor_min": 0.45, "high_anchor_at_least_min": True, "high_above_low": True}
    assert list(found["alignment_tasks"]) == ["parallel_align"]  # sst2 is no alignment task
    task = found["alignment_tasks"]["parallel_align"]
    assert task["detected"] and task["retrieval_raised"] and task["accuracy_ci95"] == [0.01, 0.07]
    text = narrative.positive_control({"planted": found, "seeds": [0, 1]})
    assert "### Positive control" in text[1]
    assert "graded transfer was detected" in text[-1] and "`parallel_align` raised transfer" in text[-1]
    assert "+4.0 points (95% CI 1.0 to 7.0)" in text[-1] and "covers test items only" in text[-1]
    # a missed answer reads as missed
    missed = summaries.planted(config, *_planted_inputs(fr=0.30, ci_low=-0.01))
    assert missed["gradient"]["high_anchor_at_least_min"] is False
    assert not missed["alignment_tasks"]["parallel_align"]["detected"]
    text = narrative.positive_control({"planted": missed, "seeds": [0, 1, 2]})[-1]
    assert "graded transfer was NOT detected" in text and "not all at 45.0% or more" in text
    assert "did NOT clearly raise" in text and "test items only" not in text
    # real data plant nothing, and the report says nothing of a positive control
    real = _planted_config(xnli={"source": "official", "path": "x"}, mnli={"source": "local", "path": "m"},
                           conditions=["none"], tasks={})
    assert summaries.planted(real, *_planted_inputs(fr=0.55, ci_low=0.01)) is None
    assert narrative.positive_control({"planted": None, "seeds": [0]}) == []
