"""``xnli-study prefetch``: what a profile reads from the hub is fetched through the run's own
readers where the hub answers, listed (exit 1) where it does not; an offline run reads the
datasets prefetch cached."""

from __future__ import annotations

import pytest

from conftest import write_params
from xnli_study import hub, prefetch
from xnli_study.cli import main
from xnli_study.config import load_params
from xnli_study.errors import HubUnavailableError

HUB_PROFILE = """profile: cluster
run_name: cluster
encoder: {name: FacebookAI/xlm-roberta-base}
languages: [en, fr]
xnli: {source: hub, eval_split: test}
mnli: {source: hub}
conditions: [none, sst2, cosmosqa]
tasks: {cosmosqa: {source: local, path: cosmos.jsonl}}
"""


def test_offline_it_lists_what_it_would_fetch_and_exits_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "cosmos.jsonl").write_text("")
    params = write_params(tmp_path, HUB_PROFILE)
    monkeypatch.setattr(prefetch, "hub_reachable", lambda: False)
    assert main(["prefetch", "--params", str(params)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the Hugging Face hub cannot be reached")
    for repo in ("model FacebookAI/xlm-roberta-base", "dataset facebook/xnli", "dataset nyu-mll/multi_nli",
                 "dataset stanfordnlp/sst2"):
        assert repo in err[0]
    assert "cosmos" not in err[0]  # a local task is not fetched


def test_online_it_reads_every_hub_part_through_the_run_s_readers(tmp_path, monkeypatch):
    (tmp_path / "cosmos.jsonl").write_text("")
    config = load_params(write_params(tmp_path, HUB_PROFILE))
    read = []
    monkeypatch.setattr(prefetch, "hub_reachable", lambda: True)
    monkeypatch.setattr(prefetch, "load_tokenizer", lambda name, **kw: read.append(("tokenizer", name)))
    monkeypatch.setattr(prefetch, "load_encoder", lambda name, **kw: read.append(("encoder", name)))
    monkeypatch.setattr(prefetch, "load_xnli", lambda config, split, run_dir: read.append(("xnli", split)))
    monkeypatch.setattr(prefetch, "load_mnli", lambda config, run_dir: read.append(("mnli",)))
    monkeypatch.setattr(prefetch, "load_task", lambda task, config, run_dir: read.append(("task", task)))
    fetched = prefetch.prefetch(config)
    assert read == [("tokenizer", "FacebookAI/xlm-roberta-base"), ("encoder", "FacebookAI/xlm-roberta-base"),
                    ("xnli", "dev"), ("xnli", "test"), ("mnli",), ("task", "sst2")]
    assert set(fetched) == {"FacebookAI/xlm-roberta-base", "facebook/xnli", "nyu-mll/multi_nli", "stanfordnlp/sst2"}
    text = prefetch.format_prefetch(fetched, config)
    assert "model FacebookAI/xlm-roberta-base: cached at commit" in text and "HF_HUB_OFFLINE=1" in text


def test_a_profile_without_hub_parts_has_nothing_to_fetch(smoke_yaml, capsys):
    assert main(["prefetch", "--params", str(smoke_yaml)]) == 0
    assert "nothing to fetch" in capsys.readouterr().out


def test_offline_a_prefetched_dataset_is_read_from_the_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    with pytest.raises(HubUnavailableError, match="xnli-study prefetch|cannot be reached"):
        hub.require_hub("XNLI (facebook/xnli)", fix="fetch it", datasets=[("facebook/xnli", None)])
    snapshot = tmp_path / "datasets--facebook--xnli" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    hub.require_hub("XNLI (facebook/xnli)", fix="fetch it", datasets=[("facebook/xnli", None)])  # no error
    with pytest.raises(HubUnavailableError):  # one of two cached is not enough
        hub.require_hub("two", fix="fetch it", datasets=[("facebook/xnli", None), ("nyu-mll/multi_nli", None)])


def test_a_failed_download_is_one_line_naming_what(tmp_path, monkeypatch, capsys):
    (tmp_path / "cosmos.jsonl").write_text("")
    params = write_params(tmp_path, HUB_PROFILE)

    def gated(name, **kwargs):
        raise OSError("401 Client Error: access to model FacebookAI/xlm-roberta-base is restricted")

    monkeypatch.setattr(prefetch, "hub_reachable", lambda: True)
    monkeypatch.setattr(prefetch, "load_tokenizer", gated)
    assert main(["prefetch", "--params", str(params)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: fetching encoder FacebookAI/xlm-roberta-base failed: OSError: 401")
