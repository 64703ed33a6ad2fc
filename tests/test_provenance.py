"""The manifest's provenance: SHA-256 of local data files, commits of hub repositories."""

import hashlib
import os
import time

from xnli_study import provenance
from xnli_study.config import parse_params


def test_local_files_are_hashed_file_by_file(tmp_path):
    mnli = tmp_path / "mnli.jsonl"
    mnli.write_text('{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}\n')
    folder = tmp_path / "xnli"
    (folder / "sub").mkdir(parents=True)
    (folder / "xnli.dev.tsv").write_text("dev")
    (folder / "sub" / "xnli.test.tsv").write_text("test")
    (folder / ".hidden").write_text("skipped")
    config = parse_params({"profile": "p", "run_name": "r", "mnli": {"source": "local", "path": "mnli.jsonl"},
                           "xnli": {"source": "official", "path": "xnli"}}, base_dir=tmp_path)
    found = provenance.local_data(config)
    assert found["mnli.path"]["sha256"] == {"mnli.jsonl": hashlib.sha256(mnli.read_bytes()).hexdigest()}
    assert found["xnli.path"]["sha256"] == {
        "sub/xnli.test.tsv": hashlib.sha256(b"test").hexdigest(), "xnli.dev.tsv": hashlib.sha256(b"dev").hexdigest()}
    mnli.write_text("changed\n")
    assert provenance.local_data(config)["mnli.path"]["sha256"]["mnli.jsonl"] != found["mnli.path"]["sha256"]["mnli.jsonl"]


def _snapshot(cache, kind, repo, commit, ref=None):
    folder = cache / f"{kind}s--{repo.replace('/', '--')}"
    (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    if ref:  # the hub cache keeps a ref named a/b/c at refs/a/b/c
        (folder / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(commit)
    return folder / "snapshots" / commit


def test_hub_commits_come_from_the_local_cache(tmp_path):
    cache = tmp_path / "hub"
    _snapshot(cache, "model", "FacebookAI/xlm-roberta-base", "e73636d4f797dec63c3081bb6ed5c7b0bb3f2089", ref="main")
    old = _snapshot(cache, "dataset", "nyu-mll/multi_nli", "1111111111111111111111111111111111111111")
    new = _snapshot(cache, "dataset", "nyu-mll/multi_nli", "2222222222222222222222222222222222222222")
    os.utime(old, (time.time() - 100, time.time() - 100))
    os.utime(new, (time.time(), time.time()))
    config = parse_params({"profile": "p", "run_name": "r", "encoder": {"name": "FacebookAI/xlm-roberta-base"},
                           "xnli": {"source": "hub"}, "mnli": {"source": "hub"},
                           "conditions": ["none", "squad_v2"], "tasks": {"squad_v2": {"source": "hub"}}},
                          base_dir=tmp_path)
    found = provenance.hub_revisions(config, cache_dir=cache)
    assert found["FacebookAI/xlm-roberta-base"] == {"type": "model", "requested": "main",
                                                    "commit": "e73636d4f797dec63c3081bb6ed5c7b0bb3f2089"}
    assert found["nyu-mll/multi_nli"]["commit"] == "2" * 40  # no ref: the newest snapshot
    assert found["facebook/xnli"]["commit"] == "not downloaded yet"
    squad = [repo for repo in found if repo not in ("FacebookAI/xlm-roberta-base", "nyu-mll/multi_nli",
                                                    "facebook/xnli")]
    assert squad and all(found[r]["type"] == "dataset" for r in squad)


def test_a_revision_asked_for_is_that_revision_or_none(tmp_path):
    cache = tmp_path / "hub"
    _snapshot(cache, "dataset", "Rowan/hellaswag", "3" * 40, ref="main")
    assert provenance.cached_revision("dataset", "Rowan/hellaswag", cache_dir=cache) == "3" * 40
    assert provenance.cached_revision("dataset", "Rowan/hellaswag", "refs/convert/parquet", cache_dir=cache) is None
    _snapshot(cache, "dataset", "Rowan/hellaswag", "4" * 40, ref="refs/convert/parquet")
    assert provenance.cached_revision("dataset", "Rowan/hellaswag", "refs/convert/parquet", cache_dir=cache) == "4" * 40
    config = parse_params({"profile": "p", "run_name": "r", "conditions": ["none", "hellaswag"],
                           "tasks": {"hellaswag": {"source": "hub"}}}, base_dir=tmp_path)
    assert provenance.hub_revisions(config, cache_dir=cache) == {
        "Rowan/hellaswag@refs/convert/parquet": {"type": "dataset", "requested": "refs/convert/parquet",
                                                 "commit": "4" * 40}}


def test_offline_profiles_read_no_hub_repository(tmp_path):
    config = parse_params({"profile": "p", "run_name": "r"}, base_dir=tmp_path)
    assert provenance.hub_repos(config) == []
