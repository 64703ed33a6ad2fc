"""What the alignment tasks do to the tiny P, and what the synthetic world does without anchors.

Both run the stage functions in-process on profiles derived from the smoke profile, with the
session's shared cache (the smoke P is pretrained once per pytest run)."""

from __future__ import annotations

import json

import pytest
import yaml

from xnli_study import stages, study
from xnli_study.config import load_params
from xnli_study.runfolder import RunFolder
from xnli_study.sample import lexicon_folder, parallel_folder, write_sample

pytestmark = pytest.mark.slow


def derived_profile(tmp_path, smoke_yaml, cache, **changes) -> str:
    data = yaml.safe_load(smoke_yaml.read_text())
    data.update(output_dir=str(tmp_path / "outputs"), cache_dir=str(cache), **changes)
    path = tmp_path / f"{data['run_name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run_stage(name: str, params: str, function):
    run = stages.StageRun(name, params_path=params)
    tables = function(run)
    run.finish()
    return tables


def test_alignment_tasks_from_local_files_raise_retrieval_over_p(tmp_path, smoke_yaml, shared_cache):
    fixtures = tmp_path / "fixtures"
    params = derived_profile(
        tmp_path, smoke_yaml, shared_cache, run_name="aligning", seeds=[0],
        conditions=["none", "parallel_align", "lexical_align"],
        tasks={"parallel_align": {"source": "local", "path": str(parallel_folder(fixtures)), "max_examples": 2000},
               "lexical_align": {"source": "local", "path": str(lexicon_folder(fixtures)), "max_examples": None}})
    # local files written here, for the profile's world: an XNLI-1.0-MT folder and MUSE dictionaries
    write_sample(fixtures, load_params(params).sample_settings())
    data = run_stage("data", params, study.inspect_data)["training_data"].set_index("dataset")
    assert data.loc["parallel_align", "format"] == "parallel" and data.loc["lexical_align", "format"] == "lexicon"
    assert data.loc["parallel_align", "source"] == "parallel" and data.loc["parallel_align", "used"] == 2000
    assert data.loc["parallel_align", "dropped_eval_overlap"] == 0
    assert data.loc["lexical_align", "rows_read"] == data.loc["lexical_align", "used"] > 500
    results = run_stage("intermediate", params, study.train_intermediate)["intermediate_results"]
    results = results.set_index("condition")
    parallel, lexical = results.loc["parallel_align"], results.loc["lexical_align"]
    assert parallel["layer"] == 2 and lexical["layer"] == 1  # the defaults for a 3-layer encoder
    # held-out English sentences (and words) never trained on, in any language
    assert parallel["heldout_accuracy"] >= parallel["heldout_pretrained"] + 0.2, parallel.to_dict()
    assert lexical["heldout_accuracy"] >= lexical["heldout_pretrained"] + 0.08, lexical.to_dict()
    assert parallel["heldout_pretrained"] > parallel["chance"]  # P's anchors align some already


def test_without_anchors_transfer_stays_near_chance(tmp_path, smoke_yaml, shared_cache):
    """mOthello's ablation: every vocabulary share 0 (person names and digits stay shared)."""
    params = derived_profile(tmp_path, smoke_yaml, shared_cache, run_name="no-anchors", seeds=[0],
                             conditions=["none"], tasks={}, sample={"anchor_share": 0.0})
    for name, function in (("data", study.inspect_data), ("intermediate", study.train_intermediate),
                           ("transfer", study.train_and_evaluate_transfer)):
        tables = run_stage(name, params, function)
    acc = tables["accuracy"].set_index("lang")["accuracy"]
    assert acc["en"] >= 0.85  # English is learned
    non_en = acc.drop("en").mean()
    assert abs(non_en - 1 / 3) <= 0.05, acc.round(3).to_dict()
    sample = json.loads((RunFolder(tmp_path / "outputs" / "no-anchors").sample / "settings.json").read_text())
    assert set(sample["anchor_share"].values()) == {0.0}
