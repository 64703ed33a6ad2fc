"""Zero-shot XNLI evaluation: per-example predictions and the accuracy tables built from them.

Predictions are kept one row per (condition, seed, language, item) so that every statistic can
be recomputed from them (STUDY.md section 3). Accuracies are in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .models import pick_device
from .training import frame_key, tokenizer_key


@torch.no_grad()
def predict(model, tokenizer, frame: pd.DataFrame, *, batch_size: int = 64, max_length: int = 128,
            device: str = "auto", progress: bool = False, desc: str = "predict",
            precision: str = "fp32") -> np.ndarray:
    """Class probabilities ``(n_rows, n_labels)`` for ``frame`` (``premise, hypothesis``).

    Rows are batched by length (shortest first) and padded per batch; results come back in input
    order. ``precision="bf16"`` runs the forward pass under bf16 autocast, as training did.
    """
    dev = pick_device(device)
    model = model.to(dev).eval()
    enc = _encoded(tokenizer, frame, max_length)
    order = np.argsort([len(ids) for ids in enc["input_ids"]], kind="stable")
    out = np.zeros((len(frame), model.config.num_labels), dtype=np.float32)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        idx = order[start:start + batch_size]
        batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc.keys()}, return_tensors="pt",
                              pad_to_multiple_of=8 if dev.type == "cuda" else None)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(**{k: v.to(dev) for k, v in batch.items()}).logits
        out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


#: the last few encoded evaluation sets: a stage predicts the same XNLI split for every
#: (condition, seed) and tokenises it once
_ENCODED: dict[tuple, dict] = {}
_ENCODED_KEEP = 4


def _encoded(tokenizer, frame: pd.DataFrame, max_length: int) -> dict:
    key = (tokenizer_key(tokenizer), frame_key(frame[["premise", "hypothesis"]]), max_length)
    if key not in _ENCODED:
        enc = tokenizer(frame["premise"].tolist(), frame["hypothesis"].tolist(), truncation=True,
                        max_length=max_length)
        while len(_ENCODED) >= _ENCODED_KEEP:
            _ENCODED.pop(next(iter(_ENCODED)))
        _ENCODED[key] = {k: enc[k] for k in enc.keys()}
    return _ENCODED[key]


def predictions_table(frame: pd.DataFrame, probs: np.ndarray, **keys) -> pd.DataFrame:
    """Per-example predictions: ``keys`` (e.g. condition, seed) + lang, id, label, pred, correct."""
    pred = probs.argmax(-1)
    table = pd.DataFrame({
        **{k: v for k, v in keys.items()},
        "lang": frame["lang"].values, "id": frame["id"].values,
        "label": frame["label"].values, "pred": pred,
        "correct": (pred == frame["label"].values),
    })
    for j in range(probs.shape[1]):
        table[f"p{j}"] = probs[:, j]
    return table


def accuracy_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (condition, seed, lang) from a predictions table: columns ... accuracy, n."""
    keys = [c for c in ("condition", "seed") if c in predictions.columns] + ["lang"]
    grouped = predictions.groupby(keys, sort=False)["correct"]
    return grouped.agg(accuracy="mean", n="size").reset_index()


def transfer_summary(accuracy: pd.DataFrame, *, languages: list[str]) -> pd.DataFrame:
    """Per (condition, seed): avg over all languages, avg over non-English, English, transfer gap.

    ``transfer_gap`` = acc(en) - mean(acc(X)) over the non-English languages.
    """
    rows = []
    for (condition, seed), group in accuracy.groupby(["condition", "seed"], sort=False):
        acc = group.set_index("lang")["accuracy"]
        others = [lang for lang in languages if lang != "en" and lang in acc.index]
        rows.append({
            "condition": condition, "seed": seed, "en": float(acc.get("en", np.nan)),
            "avg_all": float(acc[[lang for lang in languages if lang in acc.index]].mean()),
            "avg_non_en": float(acc[others].mean()) if others else np.nan,
            "transfer_gap": float(acc.get("en", np.nan) - acc[others].mean()) if others else np.nan,
        })
    return pd.DataFrame(rows)


def mean_over_seeds(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; undefined, NaN, with one seed) of accuracy per
    condition and language."""
    grouped = accuracy.groupby(["condition", "lang"], sort=False)["accuracy"]
    return grouped.agg(mean="mean", sd="std", seeds="count").reset_index()
