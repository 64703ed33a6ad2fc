"""Cross-lingual alignment instruments (STUDY.md section 2).

Every metric takes and returns plain NumPy values and works in float32 and float64 (computations
are carried out in float64). Sentence vectors come from :func:`sentence_embeddings`: each sentence
encoded alone, the mean of a layer's hidden states over the sentence's real tokens (no special
tokens, no padding), layer 0 being the embedding output and the last layer the encoder's output.

References:
    Kornblith, Norouzi, Lee, Hinton (2019). Similarity of Neural Network Representations Revisited.
    Song, Smola, Gretton, Bedo, Borgwardt (2012). Feature Selection via Dependence Maximization
        (the unbiased HSIC estimator used by debiased CKA).
    Libovicky, Rosa, Fraser (2020). On the Language Neutrality of Pre-trained Multilingual
        Representations (centering; language-identity probes).
    Artetxe, Schwenk (2019). Massively Multilingual Sentence Embeddings (retrieval accuracy).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from . import faults
from .files import atomic_dir, write_json
from .models import ensure_present, load_encoder, load_tokenizer, pick_device, removed_note, weights_fingerprint
from .runfolder import EMBEDDINGS_META

_CHUNK = 2048  # rows of the similarity matrix held at once: memory O(chunk * n)


# ---- embeddings ------------------------------------------------------------------------------
def sentence_embeddings(model, tokenizer, sentences: Sequence[str], *, batch_size: int = 32,
                        max_length: int = 128, device=None, progress: bool = False) -> np.ndarray:
    """Mean-pooled sentence vectors of every layer.

    Args:
        model: a transformers encoder (``AutoModel``) or a model with one (heads are ignored).
        tokenizer: its tokenizer.
        sentences: ``n_sentences`` strings, each encoded alone (never as a pair).
        batch_size: sentences per forward pass; batches are formed by length.
        max_length: truncation length in tokens, special tokens included.
    Returns:
        float32 array ``(n_layers + 1, n_sentences, hidden)``: index 0 is the embedding output,
        index ``n_layers`` the final layer; rows in the input order. Each vector is the mean over
        the sentence's real tokens, excluding special tokens ([CLS], [SEP], <s>, </s>) and padding.
        One forward pass per batch yields every layer.
    Example:
        >>> emb = sentence_embeddings(model, tokenizer, ["A cat.", "Un chat."])  # doctest: +SKIP
        >>> emb.shape  # doctest: +SKIP
        (13, 2, 768)

    Reference:
        mean pooling over real tokens as in Libovicky et al. (2020) and Pires et al. (2019).
    """
    import torch
    from tqdm import tqdm

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(dev).eval()
    enc = tokenizer(list(sentences), truncation=True, max_length=max_length,
                    return_special_tokens_mask=True)
    lengths = np.array([len(ids) for ids in enc["input_ids"]])
    order = np.argsort(-lengths, kind="stable")  # longest first: the peak memory comes early
    out: np.ndarray | None = None
    for start in tqdm(range(0, len(order), batch_size), disable=not progress, leave=False,
                      desc="embed"):
        idx = order[start:start + batch_size]
        batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in enc.keys()}, return_tensors="pt")
        special = batch.pop("special_tokens_mask")
        inputs = {k: v.to(dev) for k, v in batch.items()}
        with torch.no_grad():
            hidden = model(**inputs, output_hidden_states=True).hidden_states  # L+1 x (B, T, H)
            keep = (inputs["attention_mask"].bool() & ~special.to(dev).bool()).unsqueeze(-1)  # (B, T, 1)
            counts = keep.sum(1).clamp(min=1)  # (B, 1)
            stacked = torch.stack(hidden)  # (L+1, B, T, H)
            pooled = (stacked.float() * keep).sum(2) / counts  # (L+1, B, H)
        if out is None:
            out = np.zeros((stacked.shape[0], len(sentences), stacked.shape[-1]), dtype=np.float32)
        out[:, idx] = pooled.cpu().numpy()
    if out is None:
        raise ValueError("sentence_embeddings needs at least one sentence")
    return out


# ---- metrics ---------------------------------------------------------------------------------
def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def retrieval_accuracy(source: np.ndarray, target: np.ndarray, *, center: bool = False) -> float:
    """Share of rows ``i`` whose nearest row of ``target`` by cosine is row ``i`` (source -> target).

    Args:
        source, target: ``(n, features)`` arrays, float32 or float64; row ``i`` of both is the
            same sentence.
        center: subtract each side's mean vector first (Libovicky et al. 2020).
    Returns:
        accuracy@1 in [0, 1]; ties go to the lowest index. Memory O(chunk x n), never n x n.
    Example:
        >>> x = np.eye(3); retrieval_accuracy(x, 2 * x)
        1.0

    Reference:
        Artetxe and Schwenk (2019), Tatoeba-style similarity search; Libovicky et al. (2020).
    """
    return retrieval_both(source, target, center=center)[0]


def retrieval_both(source: np.ndarray, target: np.ndarray, *, center: bool = False) -> tuple[float, float]:
    """``(source -> target, target -> source)`` retrieval accuracy@1 from one similarity matrix.

    Same definitions as :func:`retrieval_accuracy`; the matrix is computed once, in row chunks,
    in float32 after the rows are normalised in float64 (argmax is all that is kept).
    """
    s, t = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if s.shape != t.shape or s.ndim != 2:
        raise ValueError(f"source and target must be (n, features) of one shape, got {s.shape}, {t.shape}")
    if center:
        s, t = s - s.mean(0), t - t.mean(0)
    s, t = _unit_rows(s).astype(np.float32), _unit_rows(t).astype(np.float32)
    n = len(s)
    forward = 0
    best_col = np.full(n, -np.inf, dtype=np.float32)  # best similarity seen for each target row
    best_row = np.zeros(n, dtype=np.int64)
    for start in range(0, n, _CHUNK):
        sims = s[start:start + _CHUNK] @ t.T  # (chunk, n)
        forward += int((sims.argmax(1) == np.arange(start, start + len(sims))).sum())
        col_arg = sims.argmax(0)
        col_max = sims[col_arg, np.arange(n)]
        better = col_max > best_col
        best_col[better] = col_max[better]
        best_row[better] = col_arg[better] + start
    backward = int((best_row == np.arange(n)).sum())
    return forward / n, backward / n


def linear_cka(x: np.ndarray, y: np.ndarray, *, debiased: bool = False) -> float:
    """Linear centered kernel alignment of two representations of the same ``n`` items.

    Args:
        x: ``(n, p)`` array; y: ``(n, q)`` array (row ``i`` of both is item ``i``).
        debiased: use the unbiased HSIC estimator (Song et al. 2012), as in Kornblith et al.
            2019; needs ``n >= 4``.
    Returns:
        CKA in [0, 1] (the debiased estimate can fall slightly below 0). Invariant to orthogonal
        transforms and isotropic scaling of either side, not to arbitrary linear maps.
        Computed in feature space: memory O(n (p + q) + p q), never an ``n x n`` matrix.
    Example:
        >>> rng = np.random.default_rng(0); x = rng.normal(size=(50, 4))
        >>> round(linear_cka(x, 3 * x), 6)
        1.0

    Reference:
        Kornblith et al. (2019), Similarity of Neural Network Representations Revisited;
        debiased: Song et al. (2012), via the unbiased HSIC estimator.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x and y must be (n, features) with the same n, got {x.shape}, {y.shape}")
    if not debiased:
        x, y = x - x.mean(0), y - y.mean(0)
        xy = np.linalg.norm(y.T @ x) ** 2
        xx = np.linalg.norm(x.T @ x)
        yy = np.linalg.norm(y.T @ y)
        return float(xy / (xx * yy)) if xx > 0 and yy > 0 else 0.0
    n = len(x)
    if n < 4:
        raise ValueError("debiased CKA needs at least 4 items")

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        # unbiased HSIC of linear kernels K = a a^T, L = b b^T with zeroed diagonals
        ka, kb = (a * a).sum(1), (b * b).sum(1)  # diagonals of K and L, (n,)
        tr = np.linalg.norm(b.T @ a) ** 2 - ka @ kb  # tr(K~ L~)
        sa, sb = a.sum(0), b.sum(0)
        ka1 = a @ sa - ka  # K~ 1, (n,)
        kb1 = b @ sb - kb
        return (tr + ka1.sum() * kb1.sum() / ((n - 1) * (n - 2)) - 2 * (ka1 @ kb1) / (n - 2)) / (n * (n - 3))

    xy, xx, yy = hsic(x, y), hsic(x, x), hsic(y, y)
    return float(xy / np.sqrt(xx * yy)) if xx > 0 and yy > 0 else 0.0


def translation_cosine_margin(source: np.ndarray, target: np.ndarray) -> float:
    """Mean cosine of row-aligned pairs minus the mean cosine of all other (i != j) pairs.

    Args:
        source, target: ``(n, features)`` arrays, row ``i`` of each the same sentence, n >= 2.
    Returns:
        the margin, in [-2, 2]; 0 when translations are no closer than random pairs.
    Example:
        >>> translation_cosine_margin(np.eye(2), np.eye(2))
        1.0

    Reference:
        the margin between translation pairs and random pairs as in STUDY.md section 2; cf.
        Libovicky et al. (2020) on language-neutral similarity.
    """
    s, t = _unit_rows(source), _unit_rows(target)
    n = len(s)
    if n < 2 or s.shape != t.shape:
        raise ValueError("translation_cosine_margin needs two (n, features) arrays with n >= 2")
    pairs = float((s * t).sum(1).sum())
    total = float(s.sum(0) @ t.sum(0))  # sum of every cosine, O(n d)
    return pairs / n - (total - pairs) / (n * n - n)


def ridge_classifier(x: np.ndarray, y: np.ndarray, *, classes: int, alpha: float = 1.0):
    """A standardised one-vs-all ridge classifier fitted in closed form; returns its ``predict``.

    The same model as scikit-learn's ``make_pipeline(StandardScaler(), RidgeClassifier(alpha))``:
    features standardised with the training mean and (population) standard deviation, targets
    coded +1 for the class and -1 for the others, ridge with an unpenalised intercept, the class
    of the highest score predicted (ties to the lower class). Solved in float64 with one linear
    system, without the per-fit overhead (hundreds of small fits per alignment unit); scikit-learn
    solves float32 input in float32, so a prediction at a near-tie can differ from its.

    Args:
        x: ``(n, d)`` training vectors.
        y: ``(n,)`` class indices in ``0 .. classes - 1``.
        classes: number of classes.
        alpha: the ridge penalty.
    Returns:
        ``predict(vectors) -> class indices``.
    Example:
        >>> x = np.array([[0.0, 1.0], [0.2, 0.9], [1.0, 0.0], [0.9, 0.1]])
        >>> ridge_classifier(x, np.array([0, 0, 1, 1]), classes=2)(np.array([[0.1, 1.0], [1.0, 0.2]]))
        array([0, 1])
    """
    x = np.asarray(x, dtype=np.float64)
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0  # constant features stay as they are
    xs = (x - mean) / scale
    targets = -np.ones((len(y), classes))
    targets[np.arange(len(y)), y] = 1.0
    x_mean, t_mean = xs.mean(0), targets.mean(0)
    xc = xs - x_mean
    weights = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (targets - t_mean))
    bias = t_mean - x_mean @ weights

    def predict(vectors: np.ndarray) -> np.ndarray:
        scores = ((np.asarray(vectors, dtype=np.float64) - mean) / scale) @ weights + bias
        return scores.argmax(1)

    return predict


def language_id_probe(embeddings: Mapping[str, np.ndarray], *, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a linear classifier predicting the language of a vector.

    Args:
        embeddings: language -> ``(n, d)`` array; row ``i`` is item ``i`` in every language.
        folds: number of folds; folds are split by item, so an item's translations are all in
            train or all in test.
        seed: seed of the fold assignment.
    Returns:
        mean accuracy over folds in [0, 1]; 1/k for k perfectly language-neutral languages,
        lower = more language-neutral (Libovicky et al. 2020). The classifier is a standardised
        ridge classifier (linear, closed form: fast and deterministic at 100,000 x 768).
    Example:
        >>> rng = np.random.default_rng(0)
        >>> e = {"en": rng.normal(size=(40, 8)), "fr": rng.normal(size=(40, 8)) + 5}
        >>> language_id_probe(e, folds=4)
        1.0

    Reference:
        Libovicky, Rosa and Fraser (2020), On the Language Neutrality of Pre-trained
        Multilingual Representations.
    """
    from sklearn.model_selection import GroupKFold

    langs = list(embeddings)
    n = len(next(iter(embeddings.values())))
    if any(len(v) != n for v in embeddings.values()):
        raise ValueError("every language needs the same n items")
    x = np.concatenate([np.asarray(embeddings[lang], dtype=np.float32) for lang in langs])
    y = np.repeat(np.arange(len(langs)), n)
    groups = np.tile(np.random.default_rng(seed).permutation(n), len(langs))
    scores = []
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        predict = ridge_classifier(x[train], y[train], classes=len(langs))
        scores.append(float((predict(x[test]) == y[test]).mean()))
    return float(np.mean(scores))


# ---- probe sets ------------------------------------------------------------------------------
def probe_set(xnli: pd.DataFrame, *, max_sentences: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The deduplicated parallel probe set from an XNLI split.

    Each premise appears three times in XNLI: keep each distinct premise once, plus the
    hypotheses, and drop sentences whose English text repeats an earlier one. Returns a tidy frame
    ``sid, kind, lang, text`` where ``sid`` is the same in every language (``p:<premise_id>`` or
    ``h:<item id>``). ``max_sentences`` keeps a seeded random subset of sentence ids.
    """
    first = xnli.drop_duplicates(subset=["lang", "premise_id"], keep="first")
    premises = pd.DataFrame({"sid": "p:" + first["premise_id"].astype(str), "kind": "premise",
                             "lang": first["lang"].values, "text": first["premise"].values})
    hyps = pd.DataFrame({"sid": "h:" + xnli["id"].astype(str), "kind": "hypothesis",
                         "lang": xnli["lang"].values, "text": xnli["hypothesis"].values})
    table = pd.concat([premises, hyps], ignore_index=True)
    ref_lang = "en" if "en" in set(table["lang"]) else table["lang"].iloc[0]
    ref = table[table["lang"] == ref_lang]
    keep = ref.loc[~ref["text"].str.strip().duplicated(), "sid"]
    if max_sentences is not None and len(keep) > max_sentences:
        keep = keep.sample(n=max_sentences, random_state=seed)
    order = {sid: i for i, sid in enumerate(sorted(keep, key=_sid_key))}
    table = table[table["sid"].isin(order)].copy()
    table["_o"] = table["sid"].map(order)
    return table.sort_values(["lang", "_o"]).drop(columns="_o").reset_index(drop=True)


def _sid_key(sid: str) -> tuple:
    kind, _, rest = sid.partition(":")
    return (kind != "p", int(rest) if rest.isdigit() else 0, rest)


# ---- the layer x language table ---------------------------------------------------------------
PAIRWISE_METRICS = ("retrieval_en_to_x", "retrieval_x_to_en", "retrieval",
                    "retrieval_centered_en_to_x", "retrieval_centered_x_to_en", "retrieval_centered",
                    "cka_debiased", "cka", "cosine_margin")
#: the low-data language-identity probe: training vectors per language
LOW_DATA_PER_LANGUAGE = 16


def alignment_metrics(embeddings: Mapping[str, np.ndarray], *, layers: Sequence[int] | None = None) -> pd.DataFrame:
    """Every pairwise metric of English against each other language, layer by layer.

    Args:
        embeddings: language -> ``(n_layers + 1, n, hidden)`` arrays (rows parallel), as from
            :func:`sentence_embeddings`; must hold ``en``.
        layers: layer indices to score (default: all).
    Returns:
        tidy frame ``layer, lang, metric, value, chance`` with the metrics of ``PAIRWISE_METRICS``
        (``retrieval`` is the mean of both directions; likewise ``retrieval_centered``;
        ``cka_debiased`` is the headline CKA, ``cka`` the biased estimate beside it). ``chance`` is
        the value of unrelated vectors: 1/n for retrieval, 0 for CKA and the margin.
    """
    en = embeddings["en"]
    layers = list(range(en.shape[0])) if layers is None else list(layers)
    rows = []
    for lang, emb in embeddings.items():
        if lang == "en":
            continue
        for layer in layers:
            a, b = en[layer], emb[layer]
            e2x, x2e = retrieval_both(a, b)
            ce2x, cx2e = retrieval_both(a, b, center=True)
            values = {
                "retrieval_en_to_x": e2x, "retrieval_x_to_en": x2e, "retrieval": (e2x + x2e) / 2,
                "retrieval_centered_en_to_x": ce2x, "retrieval_centered_x_to_en": cx2e,
                "retrieval_centered": (ce2x + cx2e) / 2,
                "cka_debiased": linear_cka(a, b, debiased=True) if len(a) >= 4 else np.nan,
                "cka": linear_cka(a, b),
                "cosine_margin": translation_cosine_margin(a, b),
            }
            n = len(a)
            rows += [{"layer": layer, "lang": lang, "metric": k, "value": v,
                      "chance": 1 / n if k.startswith("retrieval") else 0.0} for k, v in values.items()]
    return pd.DataFrame(rows)


def language_id_low_data(embeddings: Mapping[str, np.ndarray], *, per_language: int = LOW_DATA_PER_LANGUAGE,
                         repeats: int = 5, seed: int = 0) -> float:
    """The language-identity probe trained on few vectors: ``per_language`` sentences of each
    language train it, the other sentences (all their translations) test it; the mean accuracy
    over ``repeats`` random draws of the training sentences.

    With hundreds of training vectors the probe is at ceiling for almost every encoder; with a
    handful it separates encoders by how language-neutral their vectors are. Chance is 1/k.

    >>> rng = np.random.default_rng(0)
    >>> e = {"en": rng.normal(size=(40, 8)), "fr": rng.normal(size=(40, 8)) + 5}
    >>> language_id_low_data(e, per_language=4)
    1.0
    """
    langs = list(embeddings)
    n = len(next(iter(embeddings.values())))
    if not 0 < per_language < n:
        raise ValueError(f"per_language must be between 1 and {n - 1} (the sentences per language)")
    x = np.stack([np.asarray(embeddings[lang], dtype=np.float32) for lang in langs])  # (k, n, d)
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(repeats):
        order = rng.permutation(n)
        train, test = order[:per_language], order[per_language:]
        predict = ridge_classifier(x[:, train].reshape(-1, x.shape[-1]),
                                   np.repeat(np.arange(len(langs)), len(train)), classes=len(langs))
        predicted = predict(x[:, test].reshape(-1, x.shape[-1]))
        scores.append(float((predicted == np.repeat(np.arange(len(langs)), len(test))).mean()))
    return float(np.mean(scores))


def language_id_by_layer(embeddings: Mapping[str, np.ndarray], *, layers: Sequence[int] | None = None,
                         rows: np.ndarray | None = None, folds: int = 5, seed: int = 0) -> pd.DataFrame:
    """:func:`language_id_probe` and :func:`language_id_low_data` at each layer, on the sentences
    ``rows`` (default: all).

    Returns a frame ``layer, lang='all', metric, value, chance`` with the metrics ``language_id``
    and ``language_id_low_data`` (lower = more language-neutral) and ``chance`` = 1/languages.
    """
    first = next(iter(embeddings.values()))
    layers = list(range(first.shape[0])) if layers is None else list(layers)
    rows = np.arange(first.shape[1]) if rows is None else np.asarray(rows)
    folds = min(folds, len(rows))
    chance = 1 / len(embeddings)
    out = []
    for layer in layers:
        vectors = {k: np.asarray(v[layer][rows], dtype=np.float32) for k, v in embeddings.items()}
        out.append({"layer": layer, "lang": "all", "metric": "language_id", "chance": chance,
                    "value": language_id_probe(vectors, folds=folds, seed=seed)})
        if len(rows) > LOW_DATA_PER_LANGUAGE:
            out.append({"layer": layer, "lang": "all", "metric": "language_id_low_data", "chance": chance,
                        "value": language_id_low_data(vectors, seed=seed)})
    return pd.DataFrame(out)


def headline_layer(setting: int | str, n_layers: int) -> int:
    """The layer fixed in advance for headline numbers: ``auto`` = round(2/3 of the depth).

    8 of 12 and 16 of 24, as in STUDY.md; the embedding output is layer 0.
    """
    if setting == "auto":
        return int(round(2 * n_layers / 3))
    if not 0 <= int(setting) <= n_layers:
        raise ValueError(f"alignment.headline_layer {setting} is outside 0..{n_layers}")
    return int(setting)


# ---- the on-disk cache -----------------------------------------------------------------------
POOLING = "mean-real-tokens-v1"  # bump when the pooling changes: old caches then never match


def embeddings_key(*, weights: str, probe: pd.DataFrame, max_length: int) -> str:
    """Cache key: the checkpoint's weight fingerprint, the probe set's texts and the settings."""
    digest = hashlib.sha256()
    for part in (weights, POOLING, str(max_length)):
        digest.update(part.encode() + b"\0")
    for sid, lang, text in probe[["sid", "lang", "text"]].itertuples(index=False):
        digest.update(f"{sid}\t{lang}\t{text}\n".encode())
    return digest.hexdigest()[:24]


def cached_embeddings(checkpoint: str, probe: pd.DataFrame, *, cache_dir, batch_size: int = 32,
                      max_length: int = 128, device: str = "auto", progress: bool = False,
                      revision: str | None = None, trust_remote_code: bool = False) -> dict[str, np.ndarray]:
    """Sentence vectors of every layer for each language of ``probe``, computed once and cached.

    Vectors are stored as float16 ``.npy`` files under ``cache_dir/<key>/`` where the key covers
    the checkpoint's weights (not its name), the probe set and the settings, so a changed
    checkpoint never reuses a stale cache. Returns language -> float32 ``(n_layers + 1, n, hidden)``.
    """
    langs = list(dict.fromkeys(probe["lang"]))
    note = removed_note(checkpoint)
    if note is not None:  # removed after measurement (training.save_models): its cached vectors remain
        folder = Path(cache_dir) / embeddings_key(weights=note["weights"], probe=probe, max_length=max_length)
        if all((folder / f"{lang}.npy").is_file() for lang in langs):
            return load_cached(folder, langs)
        ensure_present(checkpoint)  # raises, naming the fix
    model = load_encoder(checkpoint, revision=revision, trust_remote_code=trust_remote_code)
    key = embeddings_key(weights=weights_fingerprint(model), probe=probe, max_length=max_length)
    folder = Path(cache_dir) / key
    if not all((folder / f"{lang}.npy").is_file() for lang in langs):
        tokenizer = load_tokenizer(checkpoint, revision=revision, trust_remote_code=trust_remote_code)
        dev = pick_device(device)
        texts = {lang: probe.loc[probe["lang"] == lang, "text"].tolist() for lang in langs}
        with atomic_dir(folder, keep_existing=True) as tmp:
            for group in _embedding_groups(texts):  # languages encoded together: fuller batches, fewer calls
                joined = [text for lang in group for text in texts[lang]]
                emb = sentence_embeddings(model, tokenizer, joined, batch_size=batch_size,
                                          max_length=max_length, device=dev, progress=progress)
                start = 0
                for lang in group:
                    np.save(tmp / f"{lang}.npy", emb[:, start:start + len(texts[lang])].astype(np.float16))
                    start += len(texts[lang])
                    faults.reached("embeddings")  # a test kills the run here, with the cache half written
            write_json(tmp / EMBEDDINGS_META, {"checkpoint": str(checkpoint), "pooling": POOLING,
                                           "max_length": max_length, "languages": langs})
    return load_cached(folder, langs)


#: sentences encoded in one call at most (several languages' when they are few): the vectors of a
#: call are held in memory at once, (layers + 1) x sentences x hidden floats
EMBED_GROUP_SENTENCES = 4096


def _embedding_groups(texts: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The languages of ``texts`` in order, in runs of at most :data:`EMBED_GROUP_SENTENCES`
    sentences (a language with more is a run of its own)."""
    groups: list[list[str]] = []
    size = 0
    for lang, sentences in texts.items():
        if groups and size + len(sentences) <= EMBED_GROUP_SENTENCES:
            groups[-1].append(lang)
            size += len(sentences)
        else:
            groups.append([lang])
            size = len(sentences)
    return groups


def load_cached(folder, langs) -> dict[str, np.ndarray]:
    """Memory-mapped float16 ``(n_layers + 1, n, hidden)`` arrays of a cache folder, by language.

    Nothing is read until a metric slices a layer, and the metrics convert one layer of one or two
    languages at a time, so memory stays bounded however large the probe set.
    """
    return {lang: np.load(Path(folder) / f"{lang}.npy", mmap_mode="r") for lang in langs}
