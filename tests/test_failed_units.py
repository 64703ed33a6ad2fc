"""A unit that fails does not stop the others: it is recorded as failed with its reason, the stage
fails naming it, and a rerun runs only the failed unit."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from conftest import ROOT
from test_training_evaluation import toy_model, toy_task  # noqa: F401 (a fixture)
from xnli_study import models, stages, study, training
from xnli_study.config import StageTrainingConfig
from xnli_study.errors import UnitsFailed
from xnli_study.runfolder import RunFolder
from xnli_study.units import read_unit, stage_units

pytestmark = pytest.mark.slow


@pytest.fixture
def params(tmp_path, shared_cache):
    data = yaml.safe_load((ROOT / "params" / "smoke.yaml").read_text())
    data.update(output_dir=str(tmp_path), cache_dir=str(shared_cache), run_name="failing", seeds=[0, 1],
                conditions=["none", "sst2"], languages=["en", "fr"])
    data["tasks"] = {"sst2": {"source": "sample", "max_examples": 100}}
    data["xnli"]["max_items"] = 60  # the sample (and so the pretrained P) stays the smoke profile's
    data["training"]["intermediate"].update(epochs=1)
    data["distributed"] = {"unit_processes": 1}  # the units in this process, where fine_tune is replaced
    path = tmp_path / "failing.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_failed_unit_is_recorded_the_others_complete_and_a_rerun_retries_it(params, tmp_path, monkeypatch):
    stages.StageRun("data", params_path=str(params)).finish()
    real = training.fine_tune
    calls = []

    def fine_tune(**kwargs):
        calls.append(kwargs["seed"])
        if kwargs["seed"] == 0:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(**kwargs)

    monkeypatch.setattr(study, "fine_tune", fine_tune)
    with pytest.raises(UnitsFailed) as failure:
        study.train_intermediate(stages.StageRun("intermediate", params_path=str(params)))
    message = str(failure.value)
    assert message.startswith("1 of 2 units of stage intermediate failed: sst2-seed0 (RuntimeError: CUDA out of "
                              "memory. Tried to allocate 2.00 GiB)")
    assert "only the failed units run" in message and "\n" not in message
    run_dir = tmp_path / "failing"
    folder = RunFolder(run_dir)
    first, second = stage_units(stages.StageRun("intermediate", params_path=str(params)).config, "intermediate")
    note = json.loads(folder.unit("intermediate", first.name, "failed").read_text())
    assert note["error"].startswith("RuntimeError: CUDA out of memory") and "Traceback" in note["traceback"]
    assert read_unit(run_dir, first) is None and read_unit(run_dir, second) is not None  # seed 1 went on
    assert not folder.record("intermediate").exists()

    done = read_unit(run_dir, second)["finished_at"]
    calls.clear()
    monkeypatch.setattr(study, "fine_tune", lambda **kwargs: (calls.append(kwargs["seed"]), real(**kwargs))[1])
    run = stages.StageRun("intermediate", params_path=str(params))
    tables = study.train_intermediate(run)
    run.finish()
    assert calls == [0]  # only the failed unit ran again
    assert read_unit(run_dir, second)["finished_at"] == done
    assert sorted(tables["intermediate_results"]["seed"]) == [0, 1]
    assert not folder.unit("intermediate", first.name, "failed").exists()


def test_a_loss_that_is_no_longer_finite_fails_the_training(toy_model, tmp_path):
    tokenizer, path = toy_model
    model = models.load_classifier(path, num_labels=2, seed=0)
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")  # as a diverged training leaves it
    settings = StageTrainingConfig(epochs=1, learning_rate=1e-3, batch_size=16, max_length=32)
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        training.fine_tune(model=model, tokenizer=tokenizer, train=toy_task(64, 0), settings=settings, seed=0,
                           device="cpu", progress=False, work_dir=tmp_path / "w")
