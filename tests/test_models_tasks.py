import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from xnli_study import hub, models, tasks
from xnli_study.config import parse_params
from xnli_study.errors import DataError, HubUnavailableError, ParamsError


def config_with(**overrides):
    base = {"profile": "t", "run_name": "t"}
    base.update(overrides)
    return parse_params(base)


def test_tiny_tokenizer_marks_special_tokens(tiny):
    tokenizer, _ = tiny
    enc = tokenizer("Anna bought a lamp.", "Anna did not buy a lamp.", return_special_tokens_mask=True)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    assert ids[0] == tokenizer.cls_token_id and special[0] == 1
    assert sum(special) == 3  # [CLS] a [SEP] b [SEP]


def test_encoder_only_passes_on_with_a_fresh_head(tmp_path, tiny):
    tokenizer, encoder = tiny
    encoder.save_pretrained(tmp_path / "p")
    tokenizer.save_pretrained(tmp_path / "p")
    first = models.load_classifier(str(tmp_path / "p"), num_labels=2, seed=0)
    with torch.no_grad():
        for param in first.parameters():
            param.add_(0.5)  # stands for training: every weight moves
    models.save_encoder(first, tokenizer, tmp_path / "i")
    second = models.load_classifier(str(tmp_path / "i"), num_labels=3, seed=1)
    # the encoder's weights come through unchanged...
    for (name, a), (_, b) in zip(first.base_model.state_dict().items(), second.base_model.state_dict().items()):
        assert torch.equal(a, b), name
    # ...and the head is new: other shape, and not derived from the first head
    assert second.classifier.weight.shape == (3, encoder.config.hidden_size)
    assert first.classifier.weight.shape == (2, encoder.config.hidden_size)
    files = {p.name for p in (tmp_path / "i").iterdir()}
    assert "config.json" in files and "tokenizer.json" in files
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "i" / "model.safetensors").keys()
    assert not any("classifier" in k for k in keys)


def test_missing_model_folder_is_a_params_error(tmp_path):
    config = config_with(encoder={"name": str(tmp_path / "nowhere")})
    with pytest.raises(ParamsError, match="does not exist"):
        models.resolve_encoder_name(config)
    (tmp_path / "empty").mkdir()
    config = config_with(encoder={"name": str(tmp_path / "empty")})
    with pytest.raises(ParamsError, match="no config.json"):
        models.resolve_encoder_name(config)


def test_hub_model_offline_and_uncached_fails_fast(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    hub.hub_reachable.cache_clear()
    try:
        config = config_with(encoder={"name": "someone/not-a-cached-model-xyz"})
        started = time.perf_counter()
        with pytest.raises(HubUnavailableError, match="encoder.name: <folder>"):
            models.resolve_encoder_name(config)
        assert time.perf_counter() - started < 10
    finally:
        hub.hub_reachable.cache_clear()


def test_weights_fingerprint_changes_with_any_weight(tiny):
    _, encoder = tiny
    before = models.weights_fingerprint(encoder)
    assert models.weights_fingerprint(encoder) == before
    clone = type(encoder)(encoder.config)
    clone.load_state_dict(encoder.state_dict())
    assert models.weights_fingerprint(clone) == before
    with torch.no_grad():
        clone.encoder.layer[0].output.dense.bias[0] += 1e-3
    assert models.weights_fingerprint(clone) != before


def test_unknown_task_names_the_known_ones():
    with pytest.raises(DataError, match="unknown task 'nope'; known: anli, anli_plus, commonsenseqa"):
        tasks.get_task("nope")


def test_readme_task_table_is_the_registry(root):
    """The README's task table lists exactly the registry's tasks, each with its hub datasets."""
    text = (root / "README.md").read_text(encoding="utf-8")
    start = text.index("### Intermediate tasks")
    section = text[start:text.index("\n## ", start)]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `")]
    listed = {row[1].strip().strip("`"): row[3] for row in rows}
    assert set(listed) == set(tasks.TASKS)
    for name, spec in tasks.TASKS.items():
        for source in spec.hub:
            assert source.hub_id in listed[name], name


def test_local_pair_tsv_with_and_without_header(tmp_path):
    plain = tmp_path / "x.tsv"
    plain.write_text("a b\tc d\t1\ne f\tg h\t0\n")
    frame = tasks.read_pair_tsv(plain)
    assert frame["text_a"].tolist() == ["a b", "e f"] and frame["label"].tolist() == [1, 0]
    header = tmp_path / "h.tsv"
    header.write_text("id\tsentence1\tsentence2\tlabel\n7\ta\tb\t1\n")
    assert tasks.read_pair_tsv(header)[["text_a", "text_b", "label"]].values.tolist() == [["a", "b", 1]]


def test_task_from_local_files_and_missing_file(tmp_path):
    path = tmp_path / "sst.tsv"
    path.write_text("sentence\tlabel\ngood film .\t1\nbad film .\t0\n")
    config = config_with(conditions=["none", "sst2"], tasks={"sst2": {"source": "local", "path": str(path)}})
    frame = tasks.load_task("sst2", config, run_dir=tmp_path)
    assert frame["label"].tolist() == [1, 0]
    config = config_with(conditions=["none", "pawsx"],
                         tasks={"pawsx": {"source": "local", "path": str(tmp_path / "no.tsv")}})
    with pytest.raises(DataError, match="'pawsx': local file .* not found"):
        tasks.load_task("pawsx", config, run_dir=tmp_path)


def test_task_from_hub_offline_names_task_and_fix(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    hub.hub_reachable.cache_clear()
    try:
        config = config_with(conditions=["none", "pawsx"])
        started = time.perf_counter()
        with pytest.raises(HubUnavailableError) as err:
            tasks.load_task("pawsx", config, run_dir=tmp_path)
        assert time.perf_counter() - started < 10
        assert "pawsx" in str(err.value) and "tasks.pawsx.source: local" in str(err.value)
    finally:
        hub.hub_reachable.cache_clear()


def test_pick_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    assert models.pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.pick_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.pick_device("auto").type == "cpu"
    with pytest.raises(ParamsError, match="no CUDA GPU"):
        models.pick_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert models.pick_device("auto").type == "mps"


def test_sst2_sample_task(tmp_path, sample_dir):
    config = config_with(conditions=["none", "sst2"], tasks={"sst2": {"source": "sample", "max_examples": 50}})
    frame = tasks.load_task("sst2", config, run_dir=tmp_path)
    assert len(frame) == 50 and isinstance(frame, pd.DataFrame)


def test_qqp_local_tsv(tmp_path):
    path = tmp_path / "qqp.tsv"
    path.write_text("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t1\t2\tHow?\tWhy?\t0\n2\t3\t4\tA?\tA!\t1\n")
    config = config_with(conditions=["none", "qqp"], tasks={"qqp": {"source": "local", "path": str(path)}})
    frame = tasks.load_task("qqp", config, run_dir=tmp_path)
    assert frame[["text_a", "text_b", "label"]].values.tolist() == [["How?", "Why?", 0], ["A?", "A!", 1]]


def test_xnli_mt_task_reads_each_non_english_language(tmp_path):
    for lang, text in (("fr", "Il pleut."), ("de", "Es regnet.")):
        (tmp_path / f"multinli.train.{lang}.tsv").write_text(f"premise\thypo\tlabel\n{text}\t{text}\tentailment\n")
    config = config_with(languages=["en", "fr", "de"], conditions=["none", "xnli_mt"],
                         tasks={"xnli_mt": {"source": "local", "path": str(tmp_path)}})
    frame = tasks.load_task("xnli_mt", config, run_dir=tmp_path)
    assert sorted(frame["text_a"]) == ["Es regnet.", "Il pleut."] and set(frame["label"]) == {0}


@pytest.mark.real
def test_anli_plus_from_a_folder_of_jsonl_files(tmp_path, shared_data):
    import shutil

    shutil.copy(shared_data / "anli" / "test.jsonl", tmp_path / "anli.jsonl")
    shutil.copy(shared_data / "mnli" / "dev_matched.jsonl", tmp_path / "mnli.jsonl")
    config = config_with(conditions=["none", "anli_plus"],
                         tasks={"anli_plus": {"source": "local", "path": str(tmp_path), "max_examples": None}})
    frame = tasks.load_task("anli_plus", config, run_dir=tmp_path)
    assert len(frame) == 3200 + 9815 and set(frame["label"]) == {0, 1, 2}


def test_anli_plus_offline_names_every_dataset(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    hub.hub_reachable.cache_clear()
    try:
        config = config_with(conditions=["none", "anli_plus"])
        with pytest.raises(HubUnavailableError, match="facebook/anli, nyu-mll/multi_nli, stanfordnlp/snli"):
            tasks.load_task("anli_plus", config, run_dir=tmp_path)
    finally:
        hub.hub_reachable.cache_clear()


def test_freeze_layers_counts_the_embeddings_as_layer_zero(tiny):
    tokenizer, encoder = tiny
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        encoder.save_pretrained(folder)
        model = models.load_classifier(folder, num_labels=3, seed=0)
    total = sum(p.numel() for p in model.parameters())
    assert models.freeze_lower_layers(model, 0) == total
    frozen_embeddings = models.freeze_lower_layers(model, 1)
    assert not any(p.requires_grad for p in model.base_model.embeddings.parameters())
    assert all(p.requires_grad for p in model.base_model.encoder.layer[0].parameters())
    assert frozen_embeddings == total - sum(p.numel() for p in model.base_model.embeddings.parameters())
    models.freeze_lower_layers(model, 2)
    assert not any(p.requires_grad for p in model.base_model.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in model.base_model.encoder.layer[1].parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    with pytest.raises(ParamsError, match="only layers 0..2"):
        models.freeze_lower_layers(model, 4)


def _hub_classification(names, labels):
    import datasets

    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"sentence": ["good film .", "bad film .", "odd film ."],
                                       "label": labels}, features=features)


def test_plain_classification_task_from_the_hub_matches_its_local_file(monkeypatch, tmp_path):
    """SST-2 through the hub path (a local ``datasets`` fixture in the hub's layout) gives the same
    frame as the GLUE TSV; unlabelled hub rows (-1) are dropped and counted."""
    import datasets

    from xnli_study.data import ReadReport

    calls = []

    def fake_load(hub_id, config=None, *, split, revision=None):
        calls.append((hub_id, config, split))
        return _hub_classification(("negative", "positive"), [1, 0, -1])

    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    report = ReadReport("sst2")
    from_hub = tasks.load_task("sst2", config_with(conditions=["none", "sst2"],
                                                   tasks={"sst2": {"source": "hub"}}),
                               run_dir=tmp_path, report=report)
    assert calls == [("stanfordnlp/sst2", None, "train")]
    assert (report.rows_read, report.dropped_unusable) == (3, 1)
    path = tmp_path / "sst.tsv"
    path.write_text("sentence\tlabel\ngood film .\t1\nbad film .\t0\n")
    local = tasks.load_task("sst2", config_with(conditions=["none", "sst2"],
                                                tasks={"sst2": {"source": "local", "path": str(path)}}),
                            run_dir=tmp_path)
    pd.testing.assert_frame_equal(from_hub, local)


def test_hub_labels_of_a_classification_task_are_checked_by_name(monkeypatch, tmp_path):
    import datasets

    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: _hub_classification(("positive", "negative"), [1, 0, 1]))
    config = config_with(conditions=["none", "sst2"], tasks={"sst2": {"source": "hub"}})
    with pytest.raises(DataError, match=r"hub:stanfordnlp/sst2: label names \['positive', 'negative'\] differ "
                                        r"from the documented \['negative', 'positive'\]"):
        tasks.load_task("sst2", config, run_dir=tmp_path)


def test_local_nli_task_counts_rows_without_consensus(tmp_path):
    from xnli_study.data import ReadReport

    (tmp_path / "a.jsonl").write_text('{"premise": "p", "hypothesis": "h", "label": "entailment"}\n'
                                      '{"premise": "p", "hypothesis": "h", "label": "-"}\n')
    (tmp_path / "b.jsonl").write_text('{"premise": "q", "hypothesis": "h", "label": "neutral"}\n')
    report = ReadReport("anli")
    config = config_with(conditions=["none", "anli"], tasks={"anli": {"source": "local", "path": str(tmp_path)}})
    frame = tasks.load_task("anli", config, run_dir=tmp_path, report=report)
    assert frame["label"].tolist() == [0, 1]
    assert (report.rows_read, report.dropped_no_consensus) == (3, 1)


def test_every_condition_starts_mnli_from_the_same_head_and_p_pooler(tmp_path, tiny):
    """F[none] and F[squad] at step 0 differ only in the encoder layers the task passed on: the
    span model has no pooler, yet F[squad] gets P's pooler and the same seeded head as F[none];
    a classification task's trained pooler is not passed on either."""
    tokenizer, encoder = tiny
    p = tmp_path / "p"
    encoder.save_pretrained(p)
    tokenizer.save_pretrained(p)
    labels = ("entailment", "neutral", "contradiction")
    starts = {"none": models.load_nli_start(str(p), None, seed=4, label_names=labels)}
    for task, fmt, names in (("squad", "extractive_qa", ("no_answer", "answer")),
                             ("sst2", "single", ("negative", "positive"))):
        model = models.load_task_model(str(p), task_format=fmt, label_names=names, seed=1)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(0.25)  # stands for intermediate training
        assert (fmt == "extractive_qa") == (getattr(model.base_model, "pooler", None) is None)
        models.save_encoder(model, tokenizer, tmp_path / task)
        starts[task] = models.load_nli_start(str(p), str(tmp_path / task), seed=4, label_names=labels)
    base = starts["none"].state_dict()
    for task in ("squad", "sst2"):
        state = starts[task].state_dict()
        assert state.keys() == base.keys()
        same = {k for k in base if torch.equal(base[k], state[k])}
        assert {k for k in base if k.startswith(("bert.pooler.", "classifier."))} <= same, task
        changed = set(base) - same
        assert changed and all(k.startswith(("bert.embeddings.", "bert.encoder.")) for k in changed), task
    # another seed gives another head, on the same P pooler
    other = models.load_nli_start(str(p), None, seed=5, label_names=labels).state_dict()
    assert not torch.equal(other["classifier.weight"], base["classifier.weight"])
    assert torch.equal(other["bert.pooler.dense.weight"], base["bert.pooler.dense.weight"])


def _tiny_profile(tmp_path, **tiny):
    settings = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "vocab_size": 400,
                "pretrain_epochs": 1, "pretrain_batch_size": 32, **tiny}
    return config_with(output_dir=str(tmp_path), encoder={"name": "tiny", "tiny": settings},
                       sample={"corpus_sentences": 20, "parallel_sentences": 10})


def test_tiny_encoder_is_pretrained_once_and_cached_by_content(tmp_path):
    from xnli_study import pretraining

    config = _tiny_profile(tmp_path)
    folder = Path(pretraining.prepare_pretrained(config))
    assert folder.parent.parent == tmp_path / ".cache" and (folder / "config.json").is_file()
    weights = (folder / "model.safetensors").stat().st_mtime_ns
    assert pretraining.prepare_pretrained(config) == str(folder)  # the same settings: reused...
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights  # ...not trained again
    # a changed setting of P or of its corpus is another P
    assert models.tiny_folder(_tiny_profile(tmp_path, pretrain_epochs=2)) != folder
    other_corpus = config.model_copy(update={"sample": config.sample.model_copy(update={"anchor_share": 0.0})})
    assert models.tiny_folder(other_corpus) != folder
    # deterministic: the same settings pretrained again give the same weights
    again = pretraining.pretrain_tiny(config, tmp_path / "again", progress=False)
    first = models.load_encoder(str(folder))
    second = models.load_encoder(str(again))
    assert models.weights_fingerprint(first) == models.weights_fingerprint(second)
    # pretraining moved the weights away from their random draw (the pooler keeps its draw)
    untrained = pretraining.pretrain_tiny(_tiny_profile(tmp_path, pretrain_epochs=0), tmp_path / "raw",
                                          progress=False)
    raw = models.load_encoder(str(untrained)).state_dict()
    trained = first.state_dict()
    assert not torch.equal(raw["encoder.layer.0.output.dense.weight"], trained["encoder.layer.0.output.dense.weight"])
    assert torch.equal(raw["pooler.dense.weight"], trained["pooler.dense.weight"])
