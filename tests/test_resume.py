"""A training killed after a checkpoint resumes from it and ends exactly where an uninterrupted
training ends: same weights, same log, same selected checkpoint."""

import numpy as np
import pandas as pd
import pytest
import torch

from xnli_study import faults, models, training
from xnli_study.config import StageTrainingConfig

from test_training_evaluation import toy_model, toy_task  # noqa: F401 (a fixture)


class Killed(Exception):
    pass


def toy_pairs(n: int) -> pd.DataFrame:
    words = ["apple", "book", "car", "lamp", "chair", "radio", "table", "door"]
    rows = [(f"the {words[i % 8]} {i % 5}", f"le {words[i % 8]} {i % 5}", f"g{i % 40}") for i in range(n)]
    return pd.DataFrame(rows, columns=["text_a", "text_b", "group"])


def kill_at(monkeypatch, n: int) -> list:
    """Make the fault hook raise at its ``n``-th checkpoint (as a SIGKILL would stop the run there)."""
    seen = []

    def reached(point):
        seen.append(point)
        if len(seen) == n:
            raise Killed(point)

    monkeypatch.setattr(faults, "reached", reached)
    return seen


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


CASES = {
    # MNLI-like: evaluation on a dev set, the best checkpoint selected, length-grouped batches
    "selected": dict(fmt="pair", select_best=True, settings=dict(evals_per_epoch=2), kill_at=3),
    # an intermediate task without selection, a checkpoint every 3 steps, rounded up to the log
    # interval (4: 8 steps an epoch, 2 evaluation intervals): the kill lands at step 12, inside the
    # second epoch, whose batch order must be drawn again as it was
    "every-3-steps": dict(fmt="pair", select_best=False, settings=dict(checkpoint_every=3, evals_per_epoch=2),
                          kill_at=3),
    # an alignment task: random batches (in-batch negatives), no evaluation
    "alignment": dict(fmt="parallel", select_best=False, settings=dict(checkpoint_every=5), kill_at=2),
}


@pytest.mark.parametrize("case", CASES)
def test_a_training_killed_after_a_checkpoint_resumes_to_the_same_result(case, toy_model, tmp_path, monkeypatch):
    tokenizer, path = toy_model
    spec = CASES[case]
    settings = StageTrainingConfig(epochs=3, learning_rate=2e-3, batch_size=16, max_length=32, warmup_ratio=0.1,
                                   **spec["settings"])
    aligning = spec["fmt"] == "parallel"
    train = toy_pairs(120) if aligning else toy_task(120, 0)
    dev = None if aligning or not spec["select_best"] else toy_task(40, 1)

    def run(resume_dir):
        model = (models.load_encoder(path) if aligning else models.load_classifier(path, num_labels=2, seed=0))
        return training.fine_tune(model=model, tokenizer=tokenizer, train=train, settings=settings, seed=1,
                                  device="cpu", eval_frame=dev, select_best=spec["select_best"],
                                  task_format=spec["fmt"], contrastive=(1, 0.1) if aligning else None,
                                  progress=False, resume_dir=resume_dir, fault_point="test-checkpoint")

    clean = run(tmp_path / "clean")
    seen = kill_at(monkeypatch, spec["kill_at"])
    with pytest.raises(Killed):
        run(tmp_path / "resumed")
    saved = training.last_checkpoint(tmp_path / "resumed")
    assert saved is not None and int(saved.name.split("-")[1]) > 0
    # a checkpoint half written when the run died is never resumed from
    (tmp_path / "resumed" / "checkpoint-999").mkdir()
    seen.clear()
    monkeypatch.setattr(faults, "reached", lambda point: None)
    resumed = run(tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "checkpoint-999").exists()

    pd.testing.assert_frame_equal(resumed.log, clean.log)
    assert resumed.best_step == clean.best_step and resumed.best_metric == clean.best_metric
    a, b = weights(clean.model), weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(clean.log) >= 3 and np.isfinite(clean.log["loss"].dropna()).all()


def test_without_checkpoints_nothing_is_left_to_resume_from(toy_model, tmp_path):
    tokenizer, path = toy_model
    settings = StageTrainingConfig(epochs=1, learning_rate=2e-3, batch_size=16, max_length=32,
                                   checkpoint_every="off", evals_per_epoch=2)
    model = models.load_classifier(path, num_labels=2, seed=0)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "checkpoint-99").mkdir()  # left by an earlier run: never resumed from with off
    result = training.fine_tune(model=model, tokenizer=tokenizer, train=toy_task(64, 0), settings=settings, seed=0,
                                device="cpu", progress=False, resume_dir=tmp_path / "r", work_dir=tmp_path / "w",
                                eval_frame=toy_task(16, 1), select_best=True)
    # the model selection's checkpoints went to the unit's folder (the caller removes it), none whole
    saved = sorted(p.name for p in (tmp_path / "r").glob("checkpoint-*"))
    assert saved and "checkpoint-99" not in saved and result.best_step is not None
    assert not list((tmp_path / "r").glob(f"checkpoint-*/{training.CHECKPOINT_SAVED}"))
    assert not (tmp_path / "w").exists()