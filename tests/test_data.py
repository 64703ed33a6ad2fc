import json
import time

import pandas as pd
import pytest

from xnli_study import data, hub
from xnli_study.errors import DataError, HubUnavailableError
from xnli_study.languages import XNLI_LANGUAGES


def test_label_words_and_ids_map_to_one_space():
    assert data.canonical_label("entailment", source="x") == 0
    assert data.canonical_label(" Neutral ", source="x") == 1
    assert data.canonical_label("c", source="x") == 2
    assert data.canonical_label(0, source="hub:facebook/xnli") == 0
    assert data.canonical_label(2, source="hub:nyu-mll/multi_nli") == 2
    # XLM's order is reversed: 0 is contradiction
    assert data.canonical_label(0, source="xlm") == 2
    with pytest.raises(DataError, match="no mapping"):
        data.canonical_label(1, source="somewhere")
    with pytest.raises(DataError, match="unknown label 'maybe'"):
        data.canonical_label("maybe", source="f.tsv")


def test_nli_jsonl_drops_and_counts_no_consensus(tmp_path):
    path = tmp_path / "m.jsonl"
    rows = [{"premise": "a", "hypothesis": "b", "label": "entailment"},
            {"premise": "c", "hypothesis": "d", "label": "-"},
            {"premise": "e", "hypothesis": "f", "label": "contradiction"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    report = data.ReadReport("m")
    frame = data.read_nli_jsonl(path, report=report)
    assert frame["label"].tolist() == [0, 2]
    assert report.rows_read == 3 and report.dropped_no_consensus == 1


def test_nli_jsonl_malformed_line_is_named(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"premise": "a", "hypothesis": "b", "label": "neutral"}\n{"premise": "x"}\n')
    with pytest.raises(DataError, match=r"m.jsonl, line 2"):
        data.read_nli_jsonl(path)


def test_official_reader_rejects_missing_files_and_columns(tmp_path):
    with pytest.raises(DataError, match="xnli.path"):
        data.read_xnli_official(tmp_path, split="test", languages=["en"])
    (tmp_path / "xnli.test.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(DataError, match="missing column"):
        data.read_xnli_official(tmp_path, split="test", languages=["en"])


def test_check_parallel_catches_a_shifted_language(sample_dir):
    frame = data.read_xnli_official(sample_dir / "xnli", split="dev", languages=["en", "fr"])
    data.check_parallel(frame)
    broken = frame.copy()
    fr = broken["lang"] == "fr"
    broken.loc[fr, "label"] = broken.loc[fr, "label"].sample(frac=1, random_state=0).values
    with pytest.raises(DataError, match="labels of 'fr' differ"):
        data.check_parallel(broken)


def test_cap_items_keeps_a_seeded_sample_of_the_same_items_everywhere(sample_dir):
    frame = data.read_xnli_official(sample_dir / "xnli", split="test", languages=XNLI_LANGUAGES)
    capped = data.cap_items(frame, 9)
    assert capped.groupby("lang").size().eq(9).all()
    data.check_parallel(capped)
    ids = frame.loc[frame["lang"] == "en", "id"].tolist()
    kept = capped.loc[capped["lang"] == "en", "id"].tolist()
    assert kept != ids[:9]  # not the first items (they run genre by genre in XNLI)
    assert kept == [i for i in ids if i in set(kept)]  # the original order
    assert kept == data.cap_items(frame, 9).loc[lambda f: f["lang"] == "en", "id"].tolist()
    assert kept != data.cap_items(frame, 9, seed=1).loc[lambda f: f["lang"] == "en", "id"].tolist()


@pytest.mark.real
def test_official_sample_from_the_xnli_release(shared_data):
    frame = data.read_xnli_official(shared_data / "xnli" / "official-sample", split="dev",
                                    languages=XNLI_LANGUAGES)
    assert sorted(frame["lang"]) == sorted(XNLI_LANGUAGES)
    assert frame.loc[frame["lang"] == "en", "premise"].iloc[0] == "And he said, Mama, I'm home."


@pytest.fixture
def hub_unreachable(monkeypatch):
    """Point the hub probe at a closed local port: the real probe code runs and fails."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    hub.hub_reachable.cache_clear()
    yield
    hub.hub_reachable.cache_clear()


def test_hub_xnli_offline_fails_fast_with_a_fix(hub_unreachable):
    started = time.perf_counter()
    with pytest.raises(HubUnavailableError) as err:
        data.load_xnli_hub("facebook/xnli", split="test", languages=["en"])
    assert time.perf_counter() - started < 10
    assert "facebook/xnli" in str(err.value) and "xnli.source: official" in str(err.value)


def test_hub_mnli_offline_fails_fast_with_a_fix(hub_unreachable):
    started = time.perf_counter()
    with pytest.raises(HubUnavailableError, match="mnli.source: local"):
        data.load_mnli_hub("nyu-mll/multi_nli", split="train", max_examples=10)
    assert time.perf_counter() - started < 10


def test_subsample_is_seeded():
    frame = pd.DataFrame({"x": range(100)})
    a, b = data.subsample(frame, 10, seed=1), data.subsample(frame, 10, seed=1)
    assert a.equals(b) and len(a) == 10
    assert len(data.subsample(frame, None)) == 100
