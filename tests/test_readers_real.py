"""Every reader on a real file of its format (../shared/data), and the one label space."""

import json

import pandas as pd
import pytest

from xnli_study import data, tasks
from xnli_study.errors import DataError
from xnli_study.languages import LABEL_TO_ID, XNLI_LANGUAGES

pytestmark = pytest.mark.real


def records(frame):
    return [(p.strip(), h.strip(), int(y)) for p, h, y in frame[["premise", "hypothesis", "label"]].values]


def test_official_tsv_and_jsonl_agree(shared_data):
    folder = shared_data / "xnli" / "official-sample"
    tsv = data.read_xnli_official(folder, split="dev", languages=XNLI_LANGUAGES)
    assert sorted(tsv["lang"]) == sorted(XNLI_LANGUAGES)
    (folder_jsonl := shared_data / "xnli" / "official-sample")
    jsonl_rows = [json.loads(line) for line in (folder_jsonl / "xnli.dev.jsonl").read_text().split("\n") if line.strip()]
    first = jsonl_rows[0]
    ar = tsv[(tsv["lang"] == "ar") & (tsv["id"] == str(first["pairID"]))]
    assert records(ar) == [(first["sentence1"].strip(), first["sentence2"].strip(), LABEL_TO_ID[first["gold_label"]])]


def test_same_item_from_official_and_xtreme(shared_data):
    official = data.read_xnli_official(shared_data / "xnli" / "official-sample", split="dev", languages=["en"])
    xtreme = data.read_xnli_xtreme(shared_data / "xnli" / "xtreme", split="dev", languages=["en"])
    item = records(official)[0]
    assert item in records(xtreme)
    assert records(xtreme)[0] == item  # pairID 1 is the first row of XTREME's dev


def test_xtreme_dev_is_labelled_and_balanced(shared_data):
    dev = data.read_xnli_xtreme(shared_data / "xnli" / "xtreme", split="dev", languages=XNLI_LANGUAGES)
    data.check_parallel(dev)
    counts = dev[dev["lang"] == "en"]["label"].value_counts().to_dict()
    assert counts == {0: 830, 1: 830, 2: 830}


def test_xtreme_test_has_no_labels_until_a_parallel_file_supplies_them(shared_data):
    test = data.read_xnli_xtreme(shared_data / "xnli" / "xtreme", split="test", languages=["en", "de", "zh"])
    assert (test["label"] == -1).all() and test.groupby("lang").size().eq(5010).all()
    labelled = data.attach_labels(test, shared_data / "xnli" / "xglue-test-de.tsv", lang="de")
    data.check_parallel(labelled)
    assert labelled[labelled["lang"] == "en"]["label"].value_counts().to_dict() == {0: 1670, 1: 1670, 2: 1670}
    with pytest.raises(DataError, match="hypotheses differ"):
        data.attach_labels(test, shared_data / "xnli" / "xglue-test-de.tsv", lang="en")


def test_mnli_plain_jsonl(shared_data):
    report = data.ReadReport("m")
    frame = data.read_mnli_file(shared_data / "mnli" / "dev_matched.jsonl", report=report)
    assert len(frame) == 9815 and report.dropped_no_consensus == 0
    assert frame["label"].value_counts().to_dict() == {0: 3479, 2: 3213, 1: 3123}


def test_mnli_official_jsonl_txt_and_glue_tsv_agree(shared_data):
    folder = shared_data / "mnli"
    jsonl = data.read_mnli_file(folder / "multinli_1.0-sample" / "multinli_1.0_train.jsonl")
    txt = data.read_mnli_file(folder / "multinli_1.0-sample" / "multinli_1.0_train.txt")
    glue = data.read_mnli_file(folder / "glue-sample" / "train.tsv")
    assert len(jsonl) == 5 and records(txt) == records(jsonl)[: len(txt)]
    assert records(glue) == records(jsonl)[: len(glue)]
    dev_txt = data.read_mnli_file(folder / "multinli_1.0-sample" / "multinli_1.0_dev_matched.txt")
    dev_glue = data.read_mnli_file(folder / "glue-sample" / "dev_matched.tsv")
    assert records(dev_glue) == records(dev_txt)[: len(dev_glue)]


def test_glue_mnli_test_file_is_refused(shared_data):
    with pytest.raises(DataError, match="no gold_label"):
        data.read_mnli_file(shared_data / "mnli" / "glue-sample" / "test_matched.tsv")


def test_no_consensus_rows_are_dropped_and_counted(tmp_path, shared_data):
    rows = (shared_data / "mnli" / "multinli_1.0-sample" / "multinli_1.0_dev_matched.jsonl").read_text().split("\n")
    first = json.loads(rows[0])
    first["gold_label"] = "-"
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join([json.dumps(first)] + rows[1:]))
    report = data.ReadReport("m")
    frame = data.read_mnli_file(path, report=report)
    assert report.dropped_no_consensus == 1 and len(frame) == report.rows_read - 1


def test_task_files_in_their_formats(shared_data, tmp_path):
    from xnli_study.config import parse_params

    def config(name, path):
        return parse_params({"profile": "t", "run_name": "t", "conditions": ["none", name],
                             "tasks": {name: {"source": "local", "path": str(path), "max_examples": None}}})

    anli = tasks.load_task("anli", config("anli", shared_data / "anli" / "test.jsonl"), run_dir=tmp_path)
    assert len(anli) == 3200 and anli["label"].value_counts().to_dict() == {0: 1070, 1: 1068, 2: 1062}
    sst2 = tasks.load_task("sst2", config("sst2", shared_data / "sst2" / "dev.tsv"), run_dir=tmp_path)
    assert len(sst2) == 872 and set(sst2["label"]) == {0, 1} and (sst2["text_b"] == "").all()
    paws = tasks.load_task("pawsx", config("pawsx", shared_data / "pawsx" / "dev-en.tsv"), run_dir=tmp_path)
    assert len(paws) == 2000 and set(paws["label"]) == {0, 1} and (paws["text_b"] != "").all()


def test_hub_label_names_are_checked_before_mapping():
    import datasets

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"])})
    ds = datasets.Dataset.from_dict({"premise": ["a", "b", "c"], "hypothesis": ["x", "y", "z"],
                                     "label": [0, 2, -1]}, features=features)
    for source in ("hub:nyu-mll/multi_nli", "hub:nyu-mll/glue/mnli", "hub:facebook/xnli", "hub:facebook/anli"):
        report = data.ReadReport(source)
        frame = data.nli_from_hub_dataset(ds, source=source, report=report)
        assert frame["label"].tolist() == [0, 2] and report.dropped_no_consensus == 1
    swapped = ds.cast_column("label", datasets.ClassLabel(names=["contradiction", "neutral", "entailment"]))
    with pytest.raises(DataError, match="refusing to map ids blindly"):
        data.nli_from_hub_dataset(swapped, source="hub:nyu-mll/multi_nli")


def test_xnli_mt_reader(tmp_path):
    (tmp_path / "multinli.train.fr.tsv").write_text(
        "premise\thypo\tlabel\nIl pleut.\tIl fait beau.\tcontradictory\nIl pleut.\tIl y a de l'eau.\tentailment\n")
    frame = data.read_xnli_mt(tmp_path, lang="fr")
    assert frame["label"].tolist() == [2, 0]
    with pytest.raises(DataError, match="XNLI-MT file"):
        data.read_xnli_mt(tmp_path, lang="de")
