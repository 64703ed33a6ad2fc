import numpy as np
import pandas as pd
import pytest
import torch

from xnli_study import evaluation, models, training
from xnli_study.config import StageTrainingConfig


def toy_task(n: int, seed: int) -> pd.DataFrame:
    """A single-sentence task a tiny model learns in seconds: does the sentence say 'not'?"""
    rng = np.random.default_rng(seed)
    nouns = ["apple", "book", "car", "lamp", "chair", "radio"]
    rows = []
    for _ in range(n):
        negated = bool(rng.integers(2))
        rows.append((f"Anna did {'not ' if negated else ''}buy a {rng.choice(nouns)} .", "", int(negated)))
    return pd.DataFrame(rows, columns=["text_a", "text_b", "label"])


@pytest.fixture
def toy_model(tiny, tmp_path):
    tokenizer, encoder = tiny
    encoder.save_pretrained(tmp_path / "p")
    tokenizer.save_pretrained(tmp_path / "p")
    return tokenizer, str(tmp_path / "p")


SETTINGS = StageTrainingConfig(epochs=4, learning_rate=2e-3, batch_size=16, max_length=32,
                               warmup_ratio=0.1, evals_per_epoch=2)


def test_fine_tune_learns_and_selects_on_eval(toy_model, tmp_path):
    tokenizer, path = toy_model
    train, dev = toy_task(400, 0), toy_task(60, 1)
    model = models.load_classifier(path, num_labels=2, seed=0)
    result = training.fine_tune(model=model, tokenizer=tokenizer, train=train, settings=SETTINGS,
                                seed=0, eval_frame=dev, select_best=True, work_dir=tmp_path, progress=False)
    evals = result.log["eval_accuracy"].dropna()
    assert len(evals) >= 8  # 2 per epoch (and one at the very end when the steps do not divide)
    assert evals.iloc[0] < 0.7  # it starts near chance...
    assert result.best_metric == pytest.approx(evals.max())
    assert result.best_metric >= 0.9  # ...and learns
    losses = result.log["loss"].dropna()
    assert losses.iloc[-1] < losses.iloc[0]
    assert not any(p.name.startswith("checkpoints-") for p in tmp_path.iterdir())


def test_same_seed_same_weights(toy_model, tmp_path):
    tokenizer, path = toy_model
    train = toy_task(64, 0)
    settings = SETTINGS.model_copy(update={"epochs": 1})
    weights = []
    for _ in range(2):
        model = models.load_classifier(path, num_labels=2, seed=0)
        training.fine_tune(model=model, tokenizer=tokenizer, train=train, settings=settings, seed=3,
                           work_dir=tmp_path, progress=False)
        weights.append(models.weights_fingerprint(model))
    assert weights[0] == weights[1]


def test_encode_pairs_pads_nothing_and_records_length(tiny):
    tokenizer, _ = tiny
    frame = pd.DataFrame({"text_a": ["a b c", "a"], "text_b": ["d", "e f g h"], "label": [0, 1]})
    ds = training.encode_pairs(tokenizer, frame, max_length=32)
    assert ds["length"] == [len(x) for x in ds["input_ids"]]
    assert tokenizer.pad_token_id not in ds["input_ids"][0]


def test_predict_is_order_independent_and_sums_to_one(toy_model):
    tokenizer, path = toy_model
    model = models.load_classifier(path, num_labels=3, seed=0).eval()
    frame = pd.DataFrame({"premise": ["Anna bought a lamp.", "Omar sold a very old red car in the park."] * 3,
                          "hypothesis": ["Anna bought something.", "Omar did not sell a car."] * 3})
    probs = evaluation.predict(model, tokenizer, frame, batch_size=2)
    assert probs.shape == (6, 3)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    single = np.stack([evaluation.predict(model, tokenizer, frame.iloc[[i]], batch_size=1)[0] for i in range(6)])
    np.testing.assert_allclose(probs, single, atol=1e-5)


def test_accuracy_tables_from_predictions():
    frame = pd.DataFrame({"lang": ["en", "en", "fr", "fr"], "id": ["1", "2", "1", "2"], "label": [0, 1, 0, 1]})
    probs = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    # seed 1 gets the first fr item right (its probabilities favour label 0 there)
    probs_1 = probs.copy()
    probs_1[2] = [0.7, 0.2, 0.1]
    preds = pd.concat([evaluation.predictions_table(frame, probs, condition="none", seed=0),
                       evaluation.predictions_table(frame, probs_1, condition="none", seed=1)])
    acc = evaluation.accuracy_table(preds)
    assert acc.set_index(["seed", "lang"])["accuracy"].to_dict() == {(0, "en"): 1.0, (0, "fr"): 0.0,
                                                                     (1, "en"): 1.0, (1, "fr"): 0.5}
    summary = evaluation.transfer_summary(acc, languages=["en", "fr"])
    assert summary["transfer_gap"].tolist() == [1.0, 0.5]
    assert summary["avg_all"].tolist() == [0.5, 0.75]
    mean = evaluation.mean_over_seeds(acc).set_index("lang")
    assert mean["mean"].tolist() == [1.0, 0.25]
    assert mean["sd"].tolist() == [0.0, pytest.approx(np.std([0.0, 0.5], ddof=1))]
    assert (preds["p0"] + preds["p1"] + preds["p2"]).round(6).eq(1).all()


def test_bf16_training_returns_a_plain_fp32_model(toy_model, tmp_path):
    tokenizer, path = toy_model
    train = toy_task(64, 0)
    settings = SETTINGS.model_copy(update={"epochs": 1, "precision": "bf16"})
    model = models.load_classifier(path, num_labels=2, seed=0)
    result = training.fine_tune(model=model, tokenizer=tokenizer, train=train, settings=settings, seed=0,
                                work_dir=tmp_path, progress=False)
    assert result.log["loss"].dropna().map(np.isfinite).all()
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    # no mixed-precision wrapper left on forward: the model in memory predicts like the saved one
    assert not hasattr(result.model.forward, "__wrapped__")
    models.save_model(result.model, tokenizer, tmp_path / "f")
    reloaded = models.load_classifier(str(tmp_path / "f"), num_labels=2, seed=5)
    frame = pd.DataFrame({"premise": train["text_a"][:8].tolist(), "hypothesis": ["x"] * 8})
    np.testing.assert_allclose(evaluation.predict(result.model, tokenizer, frame),
                               evaluation.predict(reloaded, tokenizer, frame), atol=1e-6)
    low = evaluation.predict(reloaded, tokenizer, frame, precision="bf16")
    np.testing.assert_allclose(low, evaluation.predict(reloaded, tokenizer, frame), atol=0.05)
