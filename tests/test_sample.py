import csv
import json

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
    for rel in ("xnli/xnli.test.tsv", "xnli/xnli.dev.tsv", "mnli/train.jsonl", "sst2/train.tsv", "corpus/th.txt",
                "parallel/multinli.train.zh.tsv", "lexicons/en-ru.txt", "settings.json"):
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


def test_anchor_shares_are_graded_and_recorded(tmp_path):
    settings = sample.SampleSettings(test_items=60, dev_items=30, mnli_examples=30, sst2_examples=20,
                                     corpus_sentences=30, parallel_sentences=20)
    folder = sample.write_sample(tmp_path / "s", settings)
    shares = settings.shares
    for lang, share in shares.items():
        words = sample.lexicon(lang, share)
        identical = {key for key in sample.LEXEMES if words[key] == sample.ENGLISH_WORDS[key]}
        assert abs(len(identical) - share * len(sample.LEXEMES)) <= 1, lang
        # the share holds for function words and content words alike (rounded half up)
        function = identical & set(sample.FUNCTION_WORDS)
        assert len(function) == int(share * len(sample.FUNCTION_WORDS) + 0.5), lang
    high = [shares[lang] for lang in sample.ANCHOR_GROUPS["high"]]
    low = [shares[lang] for lang in sample.ANCHOR_GROUPS["low"]]
    assert min(high) > max(low) and max(shares.values()) <= 0.5
    # a larger share keeps the smaller share's anchors
    assert set(sample.anchored_lexemes("fr", 0.1)) <= set(sample.anchored_lexemes("fr", 0.3))
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "| fr | 0.50 | high |" in readme and "| zh | 0.05 | low |" in readme
    assert json.loads(sample.settings_file(folder).read_text())["anchor_share"]["de"] == 0.5
    # every share at 0: only names and digits are shared
    assert all(sample.lexicon(lang, 0.0)[key] != sample.ENGLISH_WORDS[key]
               for lang in shares for key in sample.LEXEMES)


def test_corpora_and_lexicons(tmp_path):
    settings = sample.SampleSettings(test_items=60, dev_items=30, mnli_examples=60, sst2_examples=20,
                                     corpus_sentences=200, parallel_sentences=50)
    folder = sample.write_sample(tmp_path / "s", settings)
    xnli = pd.concat([read_xnli_official(folder / "xnli", split=split, languages=XNLI_LANGUAGES)
                      for split in ("dev", "test")])
    mnli = read_nli_jsonl(folder / "mnli" / "train.jsonl")
    xnli_sentences = set(xnli["premise"]) | set(xnli["hypothesis"])
    # the monolingual corpora: 200 sentences per language, not parallel, no XNLI item among them
    en = sample.corpus_file(folder, "en").read_text(encoding="utf-8").split("\n")[:-1]
    fr = sample.corpus_file(folder, "fr").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(en) == len(fr) == 200
    assert not set(en) & xnli_sentences and not set(fr) & xnli_sentences
    assert [s.split()[0] for s in en[:20]] != [s.split()[0] for s in fr[:20]]  # other events, not translations
    assert any(ch.isdigit() for s in fr for ch in s)  # digits are shared anchors
    # the parallel corpus: the same events in every language, none an XNLI or MNLI sentence
    from xnli_study.data import read_xnli_mt

    par_en, par_de = read_xnli_mt(sample.parallel_folder(folder), lang="en"), read_xnli_mt(
        sample.parallel_folder(folder), lang="de")
    assert len(par_en) == len(par_de) == 50 and (par_en["label"] == par_de["label"]).all()
    english_parallel = set(par_en["premise"]) | set(par_en["hypothesis"])
    assert not english_parallel & (xnli_sentences | set(mnli["premise"]) | set(mnli["hypothesis"]))
    # MUSE lexicons: "source target" per line, anchors map a word to itself
    lines = sample.lexicon_file(folder, "fr").read_text(encoding="utf-8").splitlines()
    pairs = dict(line.split(" ") for line in lines)
    assert pairs["kitchen"] in (sample.lexicon("fr", 0.5)["kitchen"],)
    assert sum(a == b for a, b in pairs.items()) >= round(0.5 * len(sample.LEXEMES)) - 2


def test_anchor_share_params_are_checked(smoke_yaml):
    import yaml
    import pytest

    from xnli_study.config import parse_params
    from xnli_study.errors import ParamsError

    data = yaml.safe_load(smoke_yaml.read_text())
    with pytest.raises(ParamsError, match="share 0.6 for fr is outside 0..0.5"):
        parse_params({**data, "sample": {"anchor_share": {"fr": 0.6}}})
    with pytest.raises(ParamsError, match="unknown pseudo-language 'en'"):
        parse_params({**data, "sample": {"anchor_share": {"en": 0.1}}})
    config = parse_params({**data, "sample": {"anchor_share": 0.2}})
    assert set(config.sample.shares().values()) == {0.2}
    config = parse_params({**data, "sample": {"anchor_share": {"fr": 0.4}}})
    assert config.sample.shares()["fr"] == 0.4 and config.sample.shares()["zh"] == 0.0
