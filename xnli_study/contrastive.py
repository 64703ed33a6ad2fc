"""Contrastive alignment training: the objective of the ``parallel_align`` and ``lexical_align`` tasks.

Both tasks train on pairs (English, X), each side encoded alone, and pull the two sides together
at one layer of the encoder with a symmetric InfoNCE loss over in-batch negatives (the
translation-ranking loss of LaBSE-style dual encoders; Feng et al. 2022):

    loss = (CE(S, I) + CE(S^T, I)) / 2,   S[i, j] = cos(e_i, x_j) / temperature

where ``e_i`` and ``x_j`` are the mean-pooled vectors of English side ``i`` and target side ``j``
at the task's layer: the mean over real tokens, special tokens and padding excluded, exactly the
pooling of the alignment metrics (:func:`xnli_study.alignment.sentence_embeddings`). For
``lexical_align`` a side is one word, so its vector is the mean over the word's subword tokens
(Targeted Lexical Injection, arXiv 2506.15415, aligns word representations at an early layer).

Pairs that share their English side (one English sentence paired with several languages) are never
each other's negatives: their off-diagonal similarities are masked out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from .alignment import retrieval_accuracy, sentence_embeddings

SIDES = ("a", "b")  # a: English, b: the other language


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, special_tokens_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: ``hidden`` (B, T, H) -> (B, H), padding and special tokens excluded."""
    keep = (attention_mask.bool() & ~special_tokens_mask.bool()).unsqueeze(-1)
    return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1)


def info_nce(a: torch.Tensor, b: torch.Tensor, *, temperature: float,
             groups: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows ``a[i]``, ``b[i]`` (cosine similarity over ``temperature``).

    ``groups`` (B,) marks rows that share their English side: such rows are not negatives of each
    other (their similarity is masked), only their own pair counts as the positive.
    """
    sim = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    if groups is not None:
        same = groups.unsqueeze(0) == groups.unsqueeze(1)
        same.fill_diagonal_(False)
        sim = sim.masked_fill(same, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2


def encode_aligned_pairs(tokenizer, frame: pd.DataFrame, *, max_length: int):
    """Tokenise a pair frame (``text_a`` English, ``text_b`` the other side, ``group``) into a
    ``datasets.Dataset`` with one column set per side (``input_ids_a``, ``attention_mask_a``,
    ``special_tokens_mask_a``, and the same with ``_b``); each side is encoded alone."""
    import datasets

    columns = {}
    for side, field in zip(SIDES, ("text_a", "text_b")):
        enc = tokenizer(frame[field].tolist(), truncation=True, max_length=max_length,
                        return_special_tokens_mask=True)
        for key in enc.keys():
            columns[f"{key}_{side}"] = enc[key]
    columns["group"] = pd.factorize(frame["group"])[0].tolist()
    columns["length"] = [max(len(x), len(y)) for x, y in zip(columns["input_ids_a"], columns["input_ids_b"])]
    return datasets.Dataset.from_dict(columns)


class PairCollator:
    """Pads each side of a batch of pairs on its own: ``{"a": {...}, "b": {...}, "group": (B,)}``."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict:
        batch = {}
        for side in SIDES:
            suffix = f"_{side}"
            rows = [{k.removesuffix(suffix): v for k, v in f.items() if k.endswith(suffix)} for f in features]
            batch[side] = dict(self.tokenizer.pad(rows, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of))
        batch["group"] = torch.tensor([f["group"] for f in features])
        return batch


def side_vectors(model, side: dict, layer: int) -> torch.Tensor:
    """The pooled vectors of one padded side at ``layer`` (0 = the embedding output)."""
    special = side["special_tokens_mask"]
    inputs = {k: v for k, v in side.items() if k != "special_tokens_mask"}
    hidden = model(**inputs, output_hidden_states=True).hidden_states[layer]
    return pool(hidden, inputs["attention_mask"], special)


def global_batch(a: torch.Tensor, b: torch.Tensor, groups: torch.Tensor):
    """In a data-parallel launch, every process's pairs of this step, so that each pair meets the
    negatives of the whole global batch as it would in one process: the vectors are gathered with
    their gradients (each process computes the same loss; the gradients that flow back to each
    process's own vectors, averaged across processes, are those of that loss). One process: as
    given."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return a, b, groups
    from torch.distributed.nn.functional import all_gather

    everyone = [torch.empty_like(groups) for _ in range(dist.get_world_size())]
    dist.all_gather(everyone, groups)
    return torch.cat(all_gather(a)), torch.cat(all_gather(b)), torch.cat(everyone)


def contrastive_trainer_class():
    """A ``Trainer`` whose loss is :func:`info_nce` at a layer (``Trainer`` imported lazily)."""
    from transformers import Trainer

    class ContrastiveTrainer(Trainer):
        def __init__(self, *args, layer: int, temperature: float, **kwargs):
            super().__init__(*args, **kwargs)
            self.layer, self.temperature = layer, temperature

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            a = side_vectors(model, inputs["a"], self.layer)
            b = side_vectors(model, inputs["b"], self.layer)
            a, b, groups = global_batch(a, b, inputs["group"])
            loss = info_nce(a, b, temperature=self.temperature, groups=groups)
            return (loss, None) if return_outputs else loss

    return ContrastiveTrainer


def pair_retrieval(embed, frame: pd.DataFrame) -> pd.DataFrame:
    """Top-1 retrieval English -> X among the pairs of each language of ``frame``.

    ``embed(texts) -> (n, hidden)`` gives the vectors at the layer being measured. Rows that share
    their English side within a language are reduced to one pair. Returns one row per language:
    ``lang, pairs, retrieval, chance`` (chance = 1 / pairs).
    """
    rows = []
    for lang, group in frame.groupby("lang", sort=True):
        group = group.drop_duplicates("text_a").drop_duplicates("text_b")
        if len(group) < 2:
            continue
        score = retrieval_accuracy(embed(group["text_a"].tolist()), embed(group["text_b"].tolist()))
        rows.append({"lang": lang, "pairs": len(group), "retrieval": score, "chance": 1 / len(group)})
    return pd.DataFrame(rows, columns=["lang", "pairs", "retrieval", "chance"])


def layer_embedder(model, tokenizer, *, layer: int, max_length: int, batch_size: int = 64, device=None):
    """``embed(texts) -> (n, hidden)``: mean-pooled vectors at ``layer``, as the alignment metrics pool."""
    def embed(texts: list[str]) -> np.ndarray:
        return sentence_embeddings(model, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                                   device=device)[layer]

    return embed
