"""Training at scale: step arithmetic across devices and accumulation, the no-best-checkpoint
failure, the tokenised-data cache, and params errors reported all at once."""

import sys

import numpy as np
import pandas as pd
import pytest

from xnli_study import models, training
from xnli_study.config import StageTrainingConfig, parse_params
from xnli_study.errors import ParamsError, StudyError

from test_training_evaluation import toy_model, toy_task  # noqa: F401  (fixture)


def settings(**kw) -> StageTrainingConfig:
    base = dict(epochs=2, learning_rate=2e-3, batch_size=8, max_length=32, warmup_ratio=0.0, evals_per_epoch=1)
    return StageTrainingConfig(**{**base, **kw})


@pytest.mark.parametrize("n, batch, accum, world, per_epoch, every", [
    (64, 8, 1, 1, 8, 8),
    (64, 8, 1, 4, 2, 2),      # four devices take 32 examples a step
    (64, 8, 2, 1, 4, 4),      # two batches a step
    (64, 8, 2, 4, 1, 1),
    (100, 8, 4, 1, 4, 4),     # 13 batches in groups of 4: the last, shorter group still steps
    (392_702, 32, 1, 8, 1534, 1534),  # MultiNLI on 8 GPUs: 392,702 / 256 = 1533.99
])
def test_schedule_counts_optimizer_steps_over_devices_and_accumulation(n, batch, accum, world, per_epoch, every):
    plan = training.schedule(n, settings(batch_size=batch, gradient_accumulation_steps=accum), world_size=world)
    assert plan.steps_per_epoch == per_epoch
    assert plan.eval_every == every
    assert plan.effective_batch == batch * accum * world
    assert plan.total_steps == 2 * per_epoch


def test_schedule_matches_what_the_trainer_runs(toy_model, tmp_path):
    """One device, accumulation 3: the schedule's total is the Trainer's global step count."""
    tokenizer, path = toy_model
    train = toy_task(100, 0)
    s = settings(gradient_accumulation_steps=3, evals_per_epoch=2)
    model = models.load_classifier(path, num_labels=2, seed=0)
    result = training.fine_tune(model=model, tokenizer=tokenizer, train=train, settings=s, seed=0,
                                work_dir=tmp_path, progress=False)
    assert int(result.log["step"].max()) == training.schedule(len(train), s).total_steps == 10


def test_fine_tune_spaces_evaluation_by_the_simulated_world_size(toy_model, tmp_path, monkeypatch):
    """With 4 processes (simulated) an epoch of 64 examples at batch 8 is 2 optimizer steps, so
    one evaluation an epoch comes every 2 steps, not every 8."""
    tokenizer, path = toy_model
    seen = {}
    transformers = sys.modules["transformers"]  # the module fine_tune imports the Trainer from

    class Spy(transformers.Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.update(eval_steps=self.args.eval_steps, save_steps=self.args.save_steps,
                        accumulation=self.args.gradient_accumulation_steps)

    monkeypatch.setattr(transformers, "Trainer", Spy)
    monkeypatch.setattr(training, "world_size", lambda *args: 4)
    model = models.load_classifier(path, num_labels=2, seed=0)
    training.fine_tune(model=model, tokenizer=tokenizer, train=toy_task(64, 0), settings=settings(epochs=0.25),
                       seed=0, eval_frame=toy_task(20, 1), select_best=True, work_dir=tmp_path, progress=False)
    assert seen == {"eval_steps": 2, "save_steps": 2, "accumulation": 1}


def test_selection_without_any_evaluation_fails_with_one_line(toy_model, tmp_path, monkeypatch):
    """A training whose evaluations never run (as when steps were counted for one device on
    several): selection must fail, not keep the last checkpoint silently."""
    from transformers.trainer_callback import DefaultFlowCallback

    step_end = DefaultFlowCallback.on_step_end

    def never_evaluate(self, args, state, control, **kwargs):
        control = step_end(self, args, state, control, **kwargs)
        control.should_evaluate = False
        return control

    monkeypatch.setattr(DefaultFlowCallback, "on_step_end", never_evaluate)
    tokenizer, path = toy_model
    model = models.load_classifier(path, num_labels=2, seed=0)
    with pytest.raises(StudyError, match="without a best checkpoint: 8 optimizer steps ran and evaluation "
                                         "comes every 8") as err:
        training.fine_tune(model=model, tokenizer=tokenizer, train=toy_task(64, 0), settings=settings(epochs=1),
                           seed=0, eval_frame=toy_task(20, 1), select_best=True, work_dir=tmp_path,
                           progress=False)
    assert "\n" not in str(err.value)


def test_second_unit_reads_the_tokenized_cache(toy_model, tmp_path, monkeypatch):
    tokenizer, path = toy_model
    calls = []
    real = training.encode_for

    def counting(fmt, tok, frame, *, max_length):
        calls.append((fmt, len(frame), max_length))
        return real(fmt, tok, frame, max_length=max_length)

    monkeypatch.setattr(training, "encode_for", counting)
    train, dev = toy_task(64, 0), toy_task(20, 1)
    cache = tmp_path / "tokenized"

    def unit(seed, frame=train, s=settings(epochs=1)):
        model = models.load_classifier(path, num_labels=2, seed=seed)
        return training.fine_tune(model=model, tokenizer=tokenizer, train=frame, settings=s, seed=seed,
                                  eval_frame=dev, select_best=True, work_dir=tmp_path, progress=False,
                                  cache_dir=cache)

    first = unit(0)
    assert calls == [("pair", 64, 32), ("pair", 20, 32)]  # the first unit tokenises train and dev
    assert len(list(cache.iterdir())) == 2
    second = unit(1)
    assert len(calls) == 2  # the second unit read both from the cache
    assert len(second.log) and len(first.log)
    unit(0, s=settings(epochs=1, max_length=24))  # another max length is another key
    unit(0, frame=train.assign(label=1 - train["label"]))  # so are other labels
    assert [c[2] for c in calls[2:]] == [24, 24, 32]
    assert len(list(cache.iterdir())) == 5


def test_cached_dataset_equals_a_fresh_encoding(toy_model, tmp_path):
    tokenizer, _ = toy_model
    frame = toy_task(30, 2)
    fresh = training.encode_for("pair", tokenizer, frame, max_length=32)
    training.encode_cached("pair", tokenizer, frame, max_length=32, cache_dir=tmp_path)
    cached = training.encode_cached("pair", tokenizer, frame, max_length=32, cache_dir=tmp_path)
    assert cached.to_dict() == fresh.to_dict()


def test_frame_key_sees_content_order_and_lists():
    a = pd.DataFrame({"text_a": ["x", "y"], "choices": [["a", "b"], ["c", "d"]], "label": [0, 1]})
    assert training.frame_key(a) == training.frame_key(a.copy())
    assert training.frame_key(a) != training.frame_key(a.iloc[::-1])
    assert training.frame_key(a) != training.frame_key(a.assign(choices=[["a", "b"], ["c", "e"]]))


def test_params_errors_are_reported_all_at_once():
    data = {"profile": "p", "run_name": "r", "seeds": [0, 0], "languages": ["en", "xx"],
            "training": {"mnli": {"batch_size": 0, "gradient_accumulation_steps": 0}}, "bogus": 1}
    with pytest.raises(ParamsError) as err:
        parse_params(data, source="p.yaml")
    lines = str(err.value).splitlines()
    assert lines[0] == "5 errors:"
    text = "\n".join(lines[1:])
    for culprit in ("'seeds' lists a seed twice", "unknown language code 'xx'", "training.mnli.batch_size",
                    "training.mnli.gradient_accumulation_steps", "unknown key 'bogus'"):
        assert culprit in text
    assert all(line.startswith("p.yaml: ") for line in lines[1:])


def test_report_recipe_shows_the_effective_batch():
    from xnli_study.config import TrainingConfig
    from xnli_study.narrative import recipe_table

    training_settings = TrainingConfig(mnli=StageTrainingConfig(batch_size=8, gradient_accumulation_steps=4))
    table = recipe_table(training_settings, devices=2)
    assert table.loc["MNLI", "effective batch"] == 64
    assert table.loc["intermediate", "effective batch"] == 64  # 32 x 1 x 2
    assert table.loc["MNLI", "accumulation"] == 4


def test_each_seed_selects_its_rows_from_one_encoding_of_the_task(toy_model, tmp_path, monkeypatch):
    """The intermediate stage splits a task per seed; the task is tokenised once, and each seed's
    rows come out as a fresh encoding of them would."""
    tokenizer, _ = toy_model
    calls = []
    real = training.encode_for

    def counting(fmt, tok, frame, *, max_length):
        calls.append(len(frame))
        return real(fmt, tok, frame, max_length=max_length)

    monkeypatch.setattr(training, "encode_for", counting)
    data = toy_task(100, 3)
    for seed in (0, 1, 2):
        held = data.sample(frac=0.1, random_state=seed)
        train = data.drop(held.index)
        got = training.encode_cached("single", tokenizer, train, max_length=32, cache_dir=tmp_path, within=data)
        assert got.to_dict() == real("single", tokenizer, train, max_length=32).to_dict()
    assert calls == [100]  # the whole task, once
    # a subset whose text_b use differs from the whole frame's is encoded on its own
    mixed = data.assign(text_b=["x" if i == 0 else "" for i in range(len(data))])
    training.encode_cached("pair", tokenizer, mixed.iloc[1:], max_length=32, cache_dir=tmp_path, within=mixed)
    assert calls[-1] == 99


def test_predict_tokenises_an_evaluation_set_once(toy_model, monkeypatch):
    from xnli_study import evaluation

    tokenizer, path = toy_model
    model = models.load_classifier(path, num_labels=3, seed=0)
    frame = pd.DataFrame({"premise": [f"Anna did buy {n} books ." for n in range(5)],
                          "hypothesis": ["Anna did not buy a car ."] * 5})
    evaluation._ENCODED.clear()
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, *args, **kwargs):
            calls.append(1)
            return self.inner(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    counted = Counting(tokenizer)
    first = evaluation.predict(model, counted, frame, max_length=32)
    second = evaluation.predict(model, counted, frame, max_length=32)
    np.testing.assert_array_equal(first, second)
    assert len(calls) == 1
    evaluation.predict(model, counted, frame.iloc[::-1].reset_index(drop=True), max_length=32)
    assert len(calls) == 2  # other rows (here, another order) are another set
