"""The alignment tasks: parallel_align (sentence-level InfoNCE) and lexical_align (word-level), their
readers (XNLI-1.0-MT folder, hub, MUSE lexicons, the sample), the loss, and what training does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from xnli_study import contrastive, hub, study, tasks
from xnli_study.alignment import sentence_embeddings
from xnli_study.config import parse_params
from xnli_study.data import ReadReport, load_xnli
from xnli_study.errors import DataError, ParamsError
from xnli_study.runfolder import RunFolder
from xnli_study.sample import mnli_file


def config_with(tmp_path, **overrides):
    base = {"profile": "t", "run_name": "t", "output_dir": str(tmp_path)}
    base.update(overrides)
    return parse_params(base)


def write_mt(folder, rows: dict[str, list[tuple[str, str]]]):
    """An XNLI-1.0-MT folder: ``multinli.train.<lang>.tsv`` with ``(premise, hypo)`` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang, pairs in rows.items():
        text = "premise\thypo\tlabel\n" + "".join(f"{p}\t{h}\tneutral\n" for p, h in pairs)
        (folder / f"multinli.train.{lang}.tsv").write_text(text, encoding="utf-8")
    return folder


# ---- the loss ---------------------------------------------------------------------------------------
def test_info_nce_is_low_for_matched_pairs_and_high_for_shuffled_ones():
    torch.manual_seed(0)
    a = torch.randn(8, 16)
    matched = contrastive.info_nce(a, a + 0.01 * torch.randn(8, 16), temperature=0.05)
    shuffled = contrastive.info_nce(a, a[torch.randperm(8)], temperature=0.05)
    assert matched < 0.05 < 1.0 < shuffled
    # symmetric: swapping the sides gives the same loss
    b = torch.randn(8, 16)
    assert torch.isclose(contrastive.info_nce(a, b, temperature=0.1), contrastive.info_nce(b, a, temperature=0.1))


def test_pairs_of_one_english_side_are_not_each_others_negatives():
    # rows 0 and 1 share their English side (one sentence paired with two languages)
    english = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    other = torch.tensor([[1.0, 0.05], [1.0, -0.05], [0.0, 1.0]])
    plain = contrastive.info_nce(english, other, temperature=0.05)
    masked = contrastive.info_nce(english, other, temperature=0.05, groups=torch.tensor([7, 7, 3]))
    assert masked < 0.01 < plain  # unmasked, each is confused with its twin


def test_training_pooling_is_the_alignment_metrics_pooling(tiny):
    tokenizer, model = tiny
    texts = ["Anna bought a lamp.", "Omar found an old book in the garden on Monday."]
    frame = pd.DataFrame({"text_a": texts, "text_b": texts, "group": texts, "lang": "fr"})
    batch = contrastive.PairCollator(tokenizer)(
        list(contrastive.encode_aligned_pairs(tokenizer, frame, max_length=32)))
    with torch.no_grad():
        pooled = contrastive.side_vectors(model, batch["a"], layer=1).numpy()
    reference = sentence_embeddings(model, tokenizer, texts, max_length=32)[1]
    np.testing.assert_allclose(pooled, reference, atol=1e-5)


# ---- readers ---------------------------------------------------------------------------------------
def test_parallel_folder_pairs_rows_across_files_and_checks_they_are_parallel(tmp_path):
    folder = write_mt(tmp_path / "mt", {
        "en": [("Anna bought a lamp.", "Anna bought something."), ("Omar sold a car.", "Omar sold it.")],
        "fr": [("Anna achetait.", "Anna quelque."), ("Omar vendait.", "Omar le.")],
        "de": [("Anna kaufte.", "Anna etwas."), ("Omar verkaufte.", "")],
    })
    report = ReadReport("t")
    frame = tasks.read_parallel_folder(folder, report=report, languages=["en", "fr", "de"])
    assert report.rows_read == 8 and report.dropped_unusable == 1  # one empty German hypothesis
    assert len(frame) == 7
    fr = frame[frame["lang"] == "fr"].set_index("text_a")["text_b"]
    assert fr["Omar sold a car."] == "Omar vendait." and fr["Anna bought something."] == "Anna quelque."
    assert (frame["group"] == frame["text_a"]).all()
    write_mt(folder, {"de": [("Anna kaufte.", "Anna etwas.")]})
    with pytest.raises(DataError, match=r"multinli.train.de.tsv: 1 rows, but multinli.train.en.tsv has 2"):
        tasks.read_parallel_folder(folder, report=ReadReport("t"), languages=["en", "fr", "de"])


def test_muse_lexicons_are_read_with_bad_lines_counted_and_missing_languages_named(tmp_path):
    folder = tmp_path / "lex"
    folder.mkdir()
    (folder / "en-fr.txt").write_text("cat chat\ncat minou\ndog\tchien\nthree words here\n\n", encoding="utf-8")
    (folder / "en-de.0-5000.txt").write_text("cat Katze\n", encoding="utf-8")
    report = ReadReport("t")
    frame = tasks.read_lexicon_folder(folder, report=report, languages=["en", "fr", "de", "ru"])
    assert sorted(map(tuple, frame[["lang", "text_a", "text_b"]].values.tolist())) == [
        ("de", "cat", "Katze"), ("fr", "cat", "chat"), ("fr", "cat", "minou"), ("fr", "dog", "chien")]
    assert report.rows_read == 5 and report.dropped_unusable == 1
    assert report.notes == ["no lexicon for ru"]
    with pytest.raises(DataError, match="no bilingual lexicon .* en-ru.txt"):
        tasks.read_lexicon_folder(folder, report=ReadReport("t"), languages=["en", "ru"])


def test_parallel_align_from_the_hub_takes_the_same_rows_in_every_language(monkeypatch, tmp_path):
    import datasets

    n = 50
    rows = {lang: {"premise": [f"{lang} premise {i}" for i in range(n)],
                   "hypothesis": [f"{lang} hypothesis {i}" for i in range(n)], "label": [0] * n}
            for lang in ("en", "fr", "de")}
    calls = []

    def fake_load(hub_id, config=None, *, split, revision=None):
        calls.append((hub_id, config, split))
        return datasets.Dataset.from_dict(rows[config])

    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    config = config_with(tmp_path, languages=["en", "fr", "de"], conditions=["none", "parallel_align"],
                         tasks={"parallel_align": {"source": "hub", "max_examples": 20}})
    report = ReadReport("t")
    frame = tasks.load_task("parallel_align", config, run_dir=tmp_path, report=report)
    assert calls == [("facebook/xnli", lang, "train") for lang in ("en", "fr", "de")]
    assert len(frame) == 20 and report.rows_read == 80  # 20 rows drawn: 2 pairs each, 2 languages
    index = frame["text_a"].str.split().str[-1] + frame["text_a"].str.split().str[1]
    assert (index == frame["text_b"].str.split().str[-1] + frame["text_b"].str.split().str[1]).all()


def test_alignment_tasks_without_a_hub_source_or_with_foreign_settings_are_refused(tmp_path):
    with pytest.raises(ParamsError, match="'lexical_align' has no hub source.*source: local.*source: sample"):
        config_with(tmp_path, conditions=["none", "lexical_align"])
    with pytest.raises(ParamsError, match="tasks.lexical_align.source to local"):
        config_with(tmp_path, conditions=["none", "lexical_align"], tasks={"lexical_align": {"source": "hub"}})
    with pytest.raises(ParamsError, match="tasks.sst2: layer applies to the alignment tasks only"):
        config_with(tmp_path, conditions=["none", "sst2"], tasks={"sst2": {"source": "sample", "layer": 1}})
    with pytest.raises(ParamsError, match="parallel_align.source: sample aligns the synthetic pseudo-languages"):
        config_with(tmp_path, xnli={"source": "official", "path": "x"}, conditions=["none", "parallel_align"],
                    tasks={"parallel_align": {"source": "sample"}})
    # the resolved params (every field written out) load again
    config = config_with(tmp_path, conditions=["none", "sst2", "parallel_align"],
                         tasks={"sst2": {"source": "sample"}, "parallel_align": {"source": "sample", "layer": 1}})
    import yaml

    assert parse_params(yaml.safe_load(config.to_yaml())).tasks == config.tasks


# ---- never the evaluation or probe sentences ---------------------------------------------------------
def test_sample_parallel_corpus_is_disjoint_from_xnli_and_mnli(tmp_path):
    config = config_with(tmp_path, conditions=["none", "parallel_align"],
                         tasks={"parallel_align": {"source": "sample", "max_examples": None}})
    report = ReadReport("t")
    frame = tasks.load_task("parallel_align", config, run_dir=tmp_path, report=report)
    assert report.dropped_eval_overlap == 0 and len(frame) > 1000  # disjoint by construction
    xnli = pd.concat([load_xnli(config, split=s, run_dir=tmp_path) for s in ("dev", "test")])
    held = set(xnli["premise"]) | set(xnli["hypothesis"])
    assert not (set(frame["text_a"]) | set(frame["text_b"])) & held
    mnli = pd.read_json(mnli_file(RunFolder(tmp_path).sample), lines=True)
    assert not set(frame["text_a"]) & (set(mnli["premise"]) | set(mnli["hypothesis"]))


def test_parallel_pairs_holding_an_xnli_sentence_are_dropped(tmp_path):
    config = config_with(tmp_path, languages=["en", "fr"], conditions=["none", "parallel_align"],
                         tasks={"parallel_align": {"source": "local", "path": str(tmp_path / "mt"),
                                                   "max_examples": None}})
    test = load_xnli(config, split="test", run_dir=tmp_path)
    en_item, fr_item = test[test["lang"] == "en"].iloc[0], test[test["lang"] == "fr"].iloc[0]
    write_mt(tmp_path / "mt", {"en": [(en_item["premise"], "Lena found a cake."), ("Omar sold a car.", "x y")],
                               "fr": [("Anna achetait.", "Lena trouvait."), ("Omar vendait.", fr_item["hypothesis"])]})
    report = ReadReport("t")
    frame = tasks.load_task("parallel_align", config, run_dir=tmp_path, report=report)
    assert report.dropped_eval_overlap == 2
    assert sorted(map(tuple, frame[["text_a", "text_b"]].values.tolist())) == [
        ("Lena found a cake.", "Lena trouvait."), ("Omar sold a car.", "Omar vendait.")]


def test_held_out_alignment_pairs_share_no_english_side_with_training():
    frame = pd.DataFrame({"text_a": [f"s{i % 30}" for i in range(90)], "text_b": [f"t{i}" for i in range(90)],
                          "lang": ["fr", "de", "ru"] * 30})
    frame["group"] = frame["text_a"]
    train, held = study.heldout_split(frame, tasks.get_task("parallel_align"), seed=0)
    assert len(held) == 9 and not set(train["group"]) & set(held["group"])
    assert len(train) + len(held) == 90


def test_pair_retrieval_scores_each_language_against_its_own_pairs():
    vectors = {"a": [1, 0, 0], "b": [0, 1, 0], "c": [0, 0, 1], "A": [1, 0, 0], "B": [0, 0.5, 1],
               "C": [0, 1, 0.2]}  # b is nearest C and c nearest B: only a finds its translation
    frame = pd.DataFrame({"text_a": ["a", "b", "c", "a", "b"], "text_b": ["A", "B", "C", "A", "B"],
                          "lang": ["fr", "fr", "fr", "de", "de"]})
    table = contrastive.pair_retrieval(lambda texts: np.array([vectors[t] for t in texts], float), frame)
    assert table.set_index("lang")["retrieval"].to_dict() == {"de": 1.0, "fr": pytest.approx(1 / 3)}
    assert table.set_index("lang")["chance"].to_dict() == {"de": 0.5, "fr": pytest.approx(1 / 3)}


def test_the_aligned_layer_follows_the_headline_layer_and_is_never_frozen(tmp_path, tiny):
    _, model = tiny  # 2 layers
    spec = tasks.get_task("parallel_align")
    config = config_with(tmp_path, conditions=["none", "parallel_align"],
                         tasks={"parallel_align": {"source": "sample"}}, alignment={"headline_layer": 2})
    assert study.alignment_layer(spec, config, model) == 2  # not round(2/3 of 2) = 1
    assert study.alignment_layer(tasks.get_task("lexical_align"), config, model) == 1  # max(1, 2/4 rounded)
    config = config_with(tmp_path, conditions=["none", "parallel_align"],
                         tasks={"parallel_align": {"source": "sample", "layer": 3}})
    with pytest.raises(DataError, match="tasks.parallel_align.layer: 3 is outside 0..2"):
        study.alignment_layer(spec, config, model)
    config = config_with(tmp_path, conditions=["none", "parallel_align"],
                         tasks={"parallel_align": {"source": "sample", "layer": 1}},
                         training={"intermediate": {"freeze_layers": 2}})
    with pytest.raises(DataError, match="freeze_layers: 2 freezes every layer up to tasks.parallel_align.layer"):
        study.alignment_layer(spec, config, model)
