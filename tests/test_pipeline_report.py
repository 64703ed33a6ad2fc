import json
import os

import pandas as pd
import pytest
import yaml

from xnli_study import files, narrative, pipeline, render, stages, summary as summaries
from xnli_study.errors import StageNotReadyError
from xnli_study.preflight import preflight


@pytest.fixture
def params(tmp_path, smoke_yaml):
    data = yaml.safe_load(smoke_yaml.read_text())
    data["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_stage_refuses_to_start_before_its_inputs_and_says_what_to_run(params):
    with pytest.raises(StageNotReadyError) as err:
        stages.StageRun("transfer", params_path=str(params))
    message = str(err.value)
    assert "needs 'data' (01_data_inspection.ipynb), 'intermediate'" in message
    assert f"Run first: xnli-study run --params {params} --out " in message
    assert message.rstrip().endswith("--stages data intermediate  (for the default profile: make study)")


def test_stage_record_and_completion(params, tmp_path):
    run = stages.StageRun("data", params_path=str(params))
    path = run.save_table("parallel", pd.DataFrame({"a": [1]}))
    assert not stages.stage_complete(run.run_dir, "data", run.config)
    run.finish(note="x")
    assert stages.stage_complete(run.run_dir, "data", run.config)
    # the next stage may start now
    stages.StageRun("intermediate", params_path=str(params))
    # a missing output makes the stage incomplete again
    path.unlink()
    assert not stages.stage_complete(run.run_dir, "data", run.config)


def test_changed_params_or_upstream_invalidate_a_stage(params):
    first = stages.StageRun("data", params_path=str(params))
    first.finish()
    second = stages.StageRun("intermediate", params_path=str(params))
    second.finish()
    assert stages.stage_complete(second.run_dir, "intermediate", second.config)
    changed = second.config.model_copy(update={"seeds": [5]})
    assert not stages.stage_complete(second.run_dir, "intermediate", changed)
    stages.StageRun("data", params_path=str(params), recompute=True).finish()  # data ran again
    assert not stages.stage_complete(second.run_dir, "intermediate", second.config)


def test_finish_refuses_when_an_output_vanished(params):
    run = stages.StageRun("data", params_path=str(params))
    path = run.save_table("parallel", pd.DataFrame({"a": [1]}))
    path.unlink()
    with pytest.raises(Exception, match="outputs missing: tables/parallel.csv"):
        run.finish()
    assert not run.folder.record("data").exists()


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    files.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert oct(os.stat(target).st_mode & 0o777) != oct(0o600)


def test_atomic_dir_replaces_whole_folders(tmp_path):
    target = tmp_path / "d"
    with files.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with files.atomic_dir(target) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError
    assert [p.name for p in target.iterdir()] == ["a"]


def test_references_match_hub_ids():
    assert summaries.references_for("FacebookAI/xlm-roberta-large")["avg_15"].tolist() == [80.9, 79.2, 80.4]
    assert summaries.references_for("/models/xlm-roberta-base")["en"].tolist() == [85.8]
    assert summaries.references_for("tiny").empty


def _summary() -> dict:
    return {
        "profile": "p", "encoder": "FacebookAI/xlm-roberta-base", "conditions": ["none", "sst2"], "seeds": [0, 1, 2],
        "xnli_split": "test", "xnli_source": "sample", "items_per_language": 120,
        "languages": ["en", "fr"], "chance": 1 / 3,
        "sizes": {"mnli_train": 800, "tasks": {"sst2": 500}},
        "xnli_accuracy": {"none": {"en": 0.9, "fr": 0.3}, "sst2": {"en": 0.8, "fr": 0.32}},
        "xnli_accuracy_sd": {"none": {"en": 0.01, "fr": 0.02}, "sst2": {"en": 0.05, "fr": 0.02}},
        "xnli_accuracy_ci95": {"none": {"en": [0.85, 0.95], "fr": [0.25, 0.35], "avg_non_en": [0.25, 0.35]},
                               "sst2": {"en": [0.7, 0.9], "fr": [0.36, 0.40], "avg_non_en": [0.36, 0.40]}},
        "xnli_accuracy_avg": {"none": {"avg": 0.6, "avg_non_en": 0.3}, "sst2": {"avg": 0.56, "avg_non_en": 0.38}},
        "transfer": {"none": {"en": 0.9, "avg_all": 0.6, "avg_non_en": 0.3, "transfer_gap": 0.6},
                     "sst2": {"en": 0.8, "avg_all": 0.56, "avg_non_en": 0.38, "transfer_gap": 0.42}},
        "comparisons": {"sst2": {
            "en": {"delta": -0.1, "ci95": [-0.2, -0.02], "p": 0.01, "p_holm": 0.01, "significant": True},
            "fr": {"delta": 0.02, "ci95": [-0.03, 0.07], "p": 0.4, "p_holm": 0.4, "significant": False},
            "avg": {"delta": -0.04, "ci95": [-0.1, 0.02], "p": 0.2, "p_holm": 0.2, "significant": False},
            "avg_non_en": {"delta": 0.02, "ci95": [-0.03, 0.07], "p": 0.4, "p_holm": 0.4, "significant": False}}},
        "alignment_vs_transfer": {"spearman": 0.4, "ci95": [-0.3, 0.9], "p": 0.3, "n": 1, "metric": "retrieval",
                                  "layer": 3},
        "stats": {"p_values": "two-sided paired bootstrap, Holm-corrected: FAMILY IN WORDS"},
        "references": [{"model": "XLM-R base", "en": 85.8, "avg_15": 76.2, "source": "XLM-R paper"}],
        "selection_dev_en": {"none": {"0": 0.91, "1": 0.9}, "sst2": {"0": 0.85, "1": 0.6}},
        "alignment": {"headline_layer": 3, "n_layers": 4, "pooling": "mean", "best_layer_pretrained_retrieval": 1,
                      "at_headline_layer": {
                          "P": {"retrieval": 0.25, "retrieval_centered": 0.5, "cka": 0.7, "cka_debiased": 0.3,
                                "language_id": 0.99, "language_id_low_data": 0.6},
                          "I[sst2]": {"retrieval": 0.2, "retrieval_centered": 0.4, "cka": 0.6, "cka_debiased": 0.2},
                          "F[none]": {"retrieval": 0.1, "retrieval_centered": 0.3, "cka": 0.5, "cka_debiased": 0.1},
                          "F[sst2]": {"retrieval": 0.15, "retrieval_centered": 0.3, "cka": 0.55,
                                      "cka_debiased": 0.12}},
                      "retrieval_chance": 0.01, "language_id_chance": 0.5},
    }


def test_narrative_is_generated_from_the_numbers():
    summary = _summary()
    text = narrative.narrative(summary, limits="LIMITS")
    assert "3 seeds (0, 1, 2)" in text and "`sst2` (500 examples)" in text and "800 examples" in text
    assert "English 90.0% (95% CI 85.0 to 95.0, sd 1.0 over seeds)" in text
    # the baseline's non-English interval contains chance; the task's does not
    assert "30.0% on average (95% CI 25.0 to 35.0); on average not distinguishable from chance" in text
    assert "38.0% on average (95% CI 36.0 to 40.0); transfer gap 42.0 points" in text
    assert "+2.0 points (95% CI -3.0 to 7.0 points; p = 0.400, Holm-adjusted p = 0.400: not significant)" in text
    assert "Per language, significant in: en." in text and "FAMILY IN WORDS" in text
    assert "Run `sst2` seed 1 reached only 60.0% on English dev against 91.0%" in text
    assert "seed 0 reached only" not in text
    assert "With 3 seeds, resampling seeds captures" in text
    assert "layer 3 of 4" in text and "P's best retrieval layer is 1" in text
    assert "retrieval 25.0% → 20.0%, centered 50.0% → 40.0%, debiased CKA 0.30 → 0.20 (biased 0.70 → 0.60)" in text
    assert "(50.0% after centering each language; chance 1.0%)" in text
    assert "debiased linear CKA is 0.30 (biased 0.70) with English" in text
    assert ("language-identity probe reaches 99.0%, and trained on only 16 sentences per language 60.0% "
            "(chance 50.0%; lower is more language-neutral)") in text
    assert "F[sst2] against F[none]: retrieval 15.0% against 10.0%" in text
    assert "Spearman ρ = 0.40 (95% bootstrap CI -0.30 to 0.90" in text and "interval includes zero" in text
    assert "XLM-R base (XLM-R paper): English 85.8%, average over 15 76.2%." in text
    assert "This run's baseline: English 90.0%, average over 2 60.0%" in text
    assert text.endswith("LIMITS")
    summary["comparisons"]["sst2"]["fr"]["significant"] = True
    summary["alignment_vs_transfer"]["ci95"] = [0.1, 0.9]
    text = narrative.narrative(summary)
    assert "Per language, significant in: en, fr." in text and "interval excludes zero" in text
    assert "a larger change in alignment went with a larger change in accuracy" in text
    summary.update(seeds=[0], xnli_split="dev")
    for by_lang in summary["comparisons"].values():
        for row in by_lang.values():
            row["significant"] = None  # what build_summary writes with fewer than 3 seeds
    text = narrative.narrative(summary)
    assert "With one seed the intervals cover test items only" in text
    assert "English XNLI dev also selected the checkpoint" in text
    assert "+2.0 points (95% CI -3.0 to 7.0 points, over test items only)" in text
    assert "significant in" not in text and "Holm-adjusted" not in text
    assert "A significance test needs at least 3 seeds" in text


def test_narrative_without_intermediate_tasks_or_defined_correlation():
    summary = _summary()
    summary["alignment_vs_transfer"] = {"spearman": None, "ci95": [None, None], "p": None, "n": 14,
                                        "metric": "retrieval", "layer": 3}
    assert "Spearman's correlation or its interval undefined" in narrative.narrative(summary)
    summary.update(conditions=["none"], comparisons={}, references=[])
    text = narrative.narrative(summary)
    assert "intermediate tasks: none (the baseline only)" in text
    assert "Against the baseline" not in text and "Published numbers" not in text


def test_delta_heatmap_marks_significant_cells():
    import pandas as pd

    from xnli_study import plots

    table = pd.DataFrame({"condition": ["t", "t", "t"], "lang": ["en", "fr", "avg"], "delta": [0.05, -0.01, 0.02],
                          "significant": [True, False, False]})
    fig = plots.delta_heatmap(table)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == ["+5.0*", "-1.0", "+2.0"]


def test_headline_and_best_layer_tables():
    rows = []
    for layer, value in enumerate([0.1, 0.5, 0.3]):
        rows.append({"stage": "pretrained", "condition": "-", "metric": "retrieval", "layer": layer, "lang": "fr", "value": value})
        rows.append({"stage": "pretrained", "condition": "-", "metric": "language_id", "layer": layer, "lang": "all", "value": value})
        rows.append({"stage": "final", "condition": "none", "metric": "retrieval", "layer": layer, "lang": "fr",
                     "value": value / 2})
    table = pd.DataFrame(rows)
    head = narrative.headline_table(table, layer=2)
    assert head.columns.tolist() == ["encoder", "retrieval", "language_id"]
    assert head.set_index("encoder")["retrieval"].to_dict() == {"P": 0.3, "F[none]": 0.15}
    best = narrative.best_layer_table(table).set_index("encoder")
    assert best.loc["P", "retrieval"] == "1: 0.500"
    assert best.loc["P", "language_id"] == "0: 0.100"  # lower is better for the language probe


def test_long_tables_point_at_the_run_folder_and_short_ones_have_no_index():
    short = narrative.show_table(pd.DataFrame({"lang": ["fr", "<b>de</b>"], "x": [0.12345, 1.0]}))
    assert "<th>lang</th>" in short.data and "0.123" in short.data and "&lt;b&gt;de&lt;/b&gt;" in short.data
    assert "<th></th>" not in short.data  # no index column
    long = narrative.show_table(pd.DataFrame({"x": range(25)}), saved_as="token_lengths")
    assert long.data == "25 rows: see `tables/token_lengths.csv`."


def test_a_stage_reruns_only_when_a_setting_it_reads_changes(params):
    for stage in ("data", "intermediate", "transfer", "alignment"):
        stages.StageRun(stage, params_path=str(params)).finish()
    config = stages.StageRun("report", params_path=str(params)).config
    run_dir = config.run_dir
    later = config.model_copy(update={"alignment": config.alignment.model_copy(update={"max_sentences": 50})})
    assert [stages.stage_complete(run_dir, s, later) for s in ("data", "intermediate", "transfer", "alignment")] == [True, True, True, False]
    more_epochs = config.training.mnli.model_copy(update={"epochs": 9})
    later = config.model_copy(update={"training": config.training.model_copy(update={"mnli": more_epochs})})
    assert [stages.stage_complete(run_dir, s, later) for s in ("data", "intermediate", "transfer")] == [True, True, False]


def test_preflight_names_missing_files_and_impossible_layers(tmp_path, smoke_yaml):
    from xnli_study.config import parse_params
    from xnli_study.errors import ParamsError

    data = yaml.safe_load(smoke_yaml.read_text())
    bad = {**data, "mnli": {"source": "local", "path": str(tmp_path / "nope.jsonl")}}
    with pytest.raises(ParamsError, match="mnli.path: file .*nope.jsonl' not found"):
        preflight(parse_params(bad))
    bad = {**data, "alignment": {**data["alignment"], "headline_layer": 9}}
    with pytest.raises(ParamsError, match="headline_layer: 9 is outside 0..3"):
        preflight(parse_params(bad))
    bad = {**data, "alignment": {**data["alignment"], "layers": [0, 1, 3]}}  # auto = 2 of 3
    with pytest.raises(ParamsError, match=r"alignment.layers: \[0, 1, 3\] leaves out the headline layer 2"):
        preflight(parse_params(bad))
    preflight(parse_params({**data, "alignment": {**data["alignment"], "layers": [0, 2]}}))
    preflight(parse_params(data))


def test_run_refuses_selected_stages_whose_inputs_are_missing(params):
    with pytest.raises(Exception, match=r"need data, intermediate.*--stages data intermediate transfer"):
        pipeline.run_study(params, stages=["transfer"])


def test_compact_tables_format_intervals_and_marks():
    import pandas as pd

    intervals = pd.DataFrame({"condition": ["none", "none"], "lang": ["fr", "avg"], "mean": [0.5, 0.45],
                              "ci_low": [0.41, 0.4], "ci_high": [0.6, 0.5]})
    table = narrative.interval_table(intervals)
    assert table.loc[0, "fr"] == "50.0 (41.0-60.0)" and list(table.columns) == ["condition", "fr", "avg"]
    comps = pd.DataFrame({"condition": ["t"], "lang": ["en"], "delta": [0.031], "ci_low": [0.01], "ci_high": [0.05],
                          "significant": [True]})
    assert narrative.comparison_table(comps).loc[0, "en"] == "+3.1 [+1.0, +5.0]*"
    assert narrative.comparison_table(comps.assign(significant=[None])).loc[0, "en"] == "+3.1 [+1.0, +5.0]"


def test_narrative_flags_what_went_wrong_and_says_what_each_condition_is():
    summary = _summary()
    summary["conditions"] = ["none", "sst2", "xnli_mt"]
    summary["setting"] = {"none": "zero-shot", "sst2": "zero-shot", "xnli_mt": "translate-train"}
    summary["sizes"] = {"mnli": {"trained": 800, "available": 1500},
                        "tasks": {"sst2": {"trained": 720, "held_out": 80, "available": 800},
                                  "xnli_mt": {"trained": 90, "held_out": 10, "available": 100}}}
    summary["intermediate"] = {"sst2": {"metric": "accuracy", "score": 0.51, "chance": 0.5, "held_out": 80},
                               "xnli_mt": {"metric": "accuracy", "score": 0.9, "chance": 1 / 3, "held_out": 10}}
    summary["label_shares"] = {"gold": {"fr": {"entailment": 1 / 3, "neutral": 1 / 3, "contradiction": 1 / 3}},
                               "predicted": {"none": {"fr": {"entailment": 0.04, "neutral": 0.86,
                                                             "contradiction": 0.10},
                                                      "en": {"entailment": 0.4, "neutral": 0.3,
                                                             "contradiction": 0.3}}}}
    text = narrative.narrative(summary)
    assert "`sst2` (trained on 720 of 800 examples; 80 held out for the task's own score)" in text
    assert "English MultiNLI fine-tuning on 800 of 1,500 examples" in text
    assert "translate-train: it trains on machine-translated text of the evaluation languages" in text
    assert "zero-shot for every condition but `xnli_mt`, which is translate-train (not zero-shot" in text
    # sst2's held-out accuracy is within two standard errors of chance: flagged; xnli_mt's is not
    assert "The intermediate task `sst2` did not learn: its held-out accuracy is 0.510 against chance 0.500" in text
    assert "`xnli_mt` did not learn" not in text
    assert 'The baseline predicts mostly one label in: fr (86.0% "neutral", gold 33.3%)' in text
    assert "en (" not in text.split("predicts mostly one label in:")[1].split("\n")[0]


def test_limits_are_generated_from_the_settings_and_the_profile_text_stays_text():
    summary = _summary()
    summary["design"] = {"encoder": "FacebookAI/xlm-roberta-base", "encoder_kind": "hub", "random_init": False,
                         "xnli_source": "xtreme", "mnli_source": "local", "task_sources": {"sst2": "local"},
                         "synthetic": False, "eval_split": "dev", "selection_split": "dev",
                         "labels_from": None, "max_items": 300, "seeds": 1, "subsampled": {"mnli": 2000}}
    text = narrative.narrative(summary, limits="Lab note <script>alert(1)</script> *loud*")
    limits = text[text.index("**Limits of this profile.**"):]
    assert "<code>FacebookAI/xlm-roberta-base</code> comes from the Hugging Face hub" in limits
    assert "XNLI comes from xtreme files; MultiNLI from local data; `sst2` from local." in limits
    assert "Evaluation is on XNLI dev, the split that also selects the checkpoint." in limits
    assert "120 test items per language (a seeded sample of 300)" in limits
    assert "1 seed: no spread over seeds, and no significance test." in limits
    assert "Subsampled: MultiNLI to 2,000 examples." in limits
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt; \\*loud\\*" in limits and "<script>" not in text
    assert "synthetic sample" not in limits
    summary["design"].update(encoder_kind="tiny", synthetic=True, eval_split="test", random_init=True)
    limits = narrative.narrative(summary)
    assert "from random weights" in limits and "not findings about real languages" in limits
    summary["design"]["random_init"] = False
    assert "pretrained in-process by masked language modelling" in narrative.narrative(summary)
    # names from the params are code that shows as typed, never markup
    summary["profile"] = "x` <img src=y onerror=alert(1)> `"
    text = narrative.narrative(summary)
    assert "<code>x` &lt;img src=y onerror=alert(1)&gt; `</code>" in text and "<img" not in text


def test_correlation_interval_with_too_few_seeds_says_it_covers_test_items_only():
    summary = _summary()
    summary["seeds"] = [0, 1]
    text = narrative.narrative(summary)
    assert "(95% bootstrap CI -0.30 to 0.90, over test items only)" in text
    summary["seeds"] = [0, 1, 2]
    assert "over test items only)" not in narrative.narrative(summary).split("Spearman")[1].split(".")[0]
