import csv

import pandas as pd

from xnli_study import sample
from xnli_study.data import check_parallel, read_nli_jsonl, read_xnli_official
from xnli_study.languages import NLI_LABELS, XNLI_LANGUAGES
from xnli_study.tasks import read_glue_single_tsv


def test_sample_is_parallel_balanced_and_in_official_format(sample_dir):
    with (sample_dir / "xnli" / "xnli.test.tsv").open(encoding="utf-8") as f:
        header = next(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert tuple(header) == sample.OFFICIAL_COLUMNS
    test = read_xnli_official(sample_dir / "xnli", split="test", languages=XNLI_LANGUAGES)
    assert sorted(test["lang"].unique()) == sorted(XNLI_LANGUAGES)
    check_parallel(test)
    per_lang = test.groupby("lang").size()
    assert (per_lang >= 60).all()
    en = test[test["lang"] == "en"]
    counts = en["label"].value_counts()
    assert len(counts) == 3 and counts.min() == counts.max()
    # the same item differs by language (it is rendered, not copied), but names are shared
    fr = test[test["lang"] == "fr"]
    assert (en["premise"].values != fr["premise"].values).all()
    assert en["premise"].str.split().str[0].tolist() == fr["premise"].str.split().str[0].tolist()


def test_splits_share_no_premise(sample_dir):
    test = read_xnli_official(sample_dir / "xnli", split="test", languages=["en"])
    dev = read_xnli_official(sample_dir / "xnli", split="dev", languages=["en"])
    train = read_nli_jsonl(sample_dir / "mnli" / "train.jsonl")
    assert not set(test["premise"]) & set(dev["premise"])
    assert not set(train["premise"]) & (set(test["premise"]) | set(dev["premise"]))
    assert set(train["label"]) == {0, 1, 2}


def test_sample_is_deterministic(tmp_path):
    a = sample.write_sample(tmp_path / "a", test_items=60, dev_items=30, mnli_examples=30, sst2_examples=20)
    b = sample.write_sample(tmp_path / "b", test_items=60, dev_items=30, mnli_examples=30, sst2_examples=20)
    for rel in ("xnli/xnli.test.tsv", "xnli/xnli.dev.tsv", "mnli/train.jsonl", "sst2/train.tsv"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes()


def test_no_quotes_or_tabs_in_text(sample_dir):
    text = (sample_dir / "xnli" / "xnli.test.tsv").read_text(encoding="utf-8")
    assert '"' not in text
    rows = text.splitlines()
    assert all(len(r.split("\t")) == len(sample.OFFICIAL_COLUMNS) for r in rows)


def test_every_language_has_its_own_script_and_order():
    clause = sample.Clause(subject="Anna", verb="buy", noun="apple", adjective="red", place="park")
    rendered = {lang: sample.render(clause, lang) for lang in XNLI_LANGUAGES}
    assert rendered["en"] == "Anna bought a red apple in the park."
    assert len(set(rendered.values())) == len(XNLI_LANGUAGES)
    assert " " not in rendered["zh"] and rendered["zh"].endswith("。")
    assert any("\u0e00" <= ch <= "\u0e7f" for ch in rendered["th"])
    assert any("\u0900" <= ch <= "\u097f" for ch in rendered["hi"])
    assert any("\u0400" <= ch <= "\u04ff" for ch in rendered["ru"])
    # verb-final languages put the verb after the object
    words = sample.lexicon("tr")
    tr = rendered["tr"].rstrip(".").split()
    assert tr.index(words["buy"]) > tr.index(words["apple"])


def test_labels_follow_the_templates():
    items = sample.nli_items(50, seed=3)
    for item in items:
        p, h = item["premise"], item["hypothesis"]
        if h.polarity != "pos" or h.subject == "nobody" or h.pronoun == "nothing":
            assert item["label"] == "contradiction"
        if h.extra is not None:
            assert item["label"] == "neutral"
        if item["label"] == "entailment":
            assert h.polarity == "pos" and h.extra is None and h.place in (None, p.place)
    assert {i["label"] for i in items} == set(NLI_LABELS)


def test_sentiment_sample_reads_as_glue(sample_dir):
    frame = read_glue_single_tsv(sample_dir / "sst2" / "train.tsv")
    assert set(frame["label"]) == {0, 1} and (frame["text_b"] == "").all()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 200
