import numpy as np
import pandas as pd
import pytest
import torch

from xnli_study import alignment as al


def rng(seed=0):
    return np.random.default_rng(seed)


def orthogonal(d, seed=0):
    q, _ = np.linalg.qr(rng(seed).normal(size=(d, d)))
    return q


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rotated_copy_is_perfectly_aligned(dtype):
    x = rng().normal(size=(300, 32)).astype(dtype)
    y = (x @ orthogonal(32)).astype(dtype)
    # CKA sees through a rotation; cosine retrieval compares coordinates, so it needs the same
    # space: a noisy, rescaled copy is retrieved perfectly, the rotated copy is not
    assert al.linear_cka(x, y) == pytest.approx(1.0, abs=1e-5)
    assert al.linear_cka(x, y, debiased=True) == pytest.approx(1.0, abs=1e-4)
    near = (3.0 * x + rng(1).normal(scale=0.05, size=x.shape)).astype(dtype)
    assert al.retrieval_accuracy(x, near) == 1.0
    assert al.retrieval_accuracy(near, x, center=True) == 1.0
    assert al.retrieval_accuracy(x, y) < 0.1


def test_independent_targets_are_not_aligned():
    n = 400
    x, y = rng(1).normal(size=(n, 64)), rng(2).normal(size=(n, 64))
    assert al.retrieval_accuracy(x, y) < 5 / n + 0.01
    assert al.linear_cka(x, y, debiased=True) == pytest.approx(0.0, abs=0.02)
    assert al.translation_cosine_margin(x, y) == pytest.approx(0.0, abs=0.02)
    # the plain (biased) estimator is near 0 too once n >> features
    big_x, big_y = rng(3).normal(size=(4000, 16)), rng(4).normal(size=(4000, 16))
    assert al.linear_cka(big_x, big_y) < 0.01


def test_language_offset_hurts_raw_retrieval_and_centering_restores_it():
    base = rng(3).normal(size=(200, 16))
    x = base + 25.0 * rng(5).normal(size=16)  # each language has its own large offset
    y = base + rng(4).normal(scale=0.3, size=base.shape) + 25.0 * rng(6).normal(size=16)
    assert al.retrieval_accuracy(x, y) < 0.2 and al.retrieval_accuracy(y, x) < 0.2
    assert al.retrieval_accuracy(x, y, center=True) > 0.95
    assert al.retrieval_accuracy(y, x, center=True) > 0.95


def test_cka_invariances():
    x = rng(6).normal(size=(150, 10))
    assert al.linear_cka(x, 7.5 * x @ orthogonal(10, 1)) == pytest.approx(1.0, abs=1e-9)
    skew = rng(7).normal(size=(10, 10)) * np.linspace(0.05, 5, 10)
    assert al.linear_cka(x, x @ skew) < 0.95


def test_debiased_cka_matches_the_gram_matrix_formula():
    x, y = rng(8).normal(size=(40, 5)), rng(9).normal(size=(40, 7)) + rng(8).normal(size=(40, 1))

    def hsic_u(k, l):
        n = len(k)
        k, l = k.copy(), l.copy()
        np.fill_diagonal(k, 0)
        np.fill_diagonal(l, 0)
        one = np.ones(n)
        return (np.trace(k @ l) + one @ k @ one * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))

    k, l = x @ x.T, y @ y.T
    expected = hsic_u(k, l) / np.sqrt(hsic_u(k, k) * hsic_u(l, l))
    assert al.linear_cka(x, y, debiased=True) == pytest.approx(expected, rel=1e-9)
    h = np.eye(40) - 1 / 40
    kc, lc = h @ k @ h, h @ l @ h
    biased = np.sum(kc * lc) / np.sqrt(np.sum(kc * kc) * np.sum(lc * lc))
    assert al.linear_cka(x, y) == pytest.approx(biased, rel=1e-9)


def test_cosine_margin_by_hand():
    s = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    t = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    cos = (s / np.linalg.norm(s, axis=1, keepdims=True)) @ (t / np.linalg.norm(t, axis=1, keepdims=True)).T
    expected = np.trace(cos) / 3 - (cos.sum() - np.trace(cos)) / 6
    assert al.translation_cosine_margin(s, t) == pytest.approx(expected)


def test_language_probe_high_with_offsets_and_chance_without():
    n, d, k = 120, 16, 4
    base = rng(10).normal(size=(n, d))
    offsets = {f"l{i}": base + rng(11 + i).normal(size=d) * 3 + rng(20 + i).normal(scale=0.1, size=(n, d)) for i in range(k)}
    assert al.language_id_probe(offsets) > 0.95
    neutral = {f"l{i}": base + rng(30 + i).normal(scale=0.5, size=(n, d)) for i in range(k)}
    assert al.language_id_probe(neutral) == pytest.approx(1 / k, abs=0.1)


def test_pooling_ignores_padding_and_special_tokens(tiny):
    tokenizer, model = tiny
    sentence = "Anna bought a red apple."
    short = al.sentence_embeddings(model, tokenizer, [sentence], batch_size=1)
    padded = al.sentence_embeddings(model, tokenizer, [sentence, sentence + " " + "x " * 30], batch_size=2)
    np.testing.assert_allclose(short[:, 0], padded[:, 0], atol=1e-5)
    # layer 0 equals the embedding output averaged over the real tokens by hand
    enc = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        emb = model.embeddings(input_ids=enc["input_ids"], token_type_ids=torch.zeros_like(enc["input_ids"]))
    by_hand = emb[0, 1:-1].mean(0).numpy()  # drop [CLS] and [SEP]
    np.testing.assert_allclose(short[0, 0], by_hand, atol=1e-5)
    assert short.shape == (model.config.num_hidden_layers + 1, 1, model.config.hidden_size)


def test_embeddings_come_back_in_input_order(tiny):
    tokenizer, model = tiny
    sentences = ["a", "Anna bought a very old red apple in the park.", "Omar sold a car."]
    together = al.sentence_embeddings(model, tokenizer, sentences, batch_size=2)
    alone = np.concatenate([al.sentence_embeddings(model, tokenizer, [s]) for s in sentences], axis=1)
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_probe_set_deduplicates_and_shares_ids(sample_dir):
    from xnli_study.data import read_xnli_official

    xnli = read_xnli_official(sample_dir / "xnli", split="test", languages=["en", "fr", "zh"])
    probe = al.probe_set(xnli)
    per_lang = probe.groupby("lang")["sid"].apply(list)
    assert per_lang["en"] == per_lang["fr"] == per_lang["zh"]
    en = probe[probe["lang"] == "en"]
    assert en["text"].is_unique
    assert (en["kind"] == "premise").sum() == xnli[xnli["lang"] == "en"]["premise_id"].nunique()
    capped = al.probe_set(xnli, max_sentences=25, seed=1)
    assert capped.groupby("lang").size().eq(25).all()
    assert capped.equals(al.probe_set(xnli, max_sentences=25, seed=1))


def test_cache_is_keyed_by_weights(tmp_path, tiny, sample_dir):
    from xnli_study.data import read_xnli_official

    import copy

    tokenizer, shared = tiny
    model = copy.deepcopy(shared)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    xnli = read_xnli_official(sample_dir / "xnli", split="dev", languages=["en", "de"])
    probe = al.probe_set(xnli, max_sentences=20)
    first = al.cached_embeddings(str(tmp_path / "m"), probe, cache_dir=tmp_path / "c")
    assert first["en"].shape == (3, 20, 32)
    assert len(list((tmp_path / "c").iterdir())) == 1
    again = al.cached_embeddings(str(tmp_path / "m"), probe, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(first["de"], again["de"])
    with torch.no_grad():
        model.encoder.layer[-1].output.dense.bias[:5] += 2.0  # not uniform: LayerNorm undoes that
    model.save_pretrained(tmp_path / "m")  # same path, new weights
    changed = al.cached_embeddings(str(tmp_path / "m"), probe, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").iterdir())) == 2
    assert not np.allclose(changed["en"][-1], first["en"][-1], atol=1e-2)


def test_languages_encoded_together_get_the_vectors_each_would_get_alone(tmp_path, tiny, sample_dir, monkeypatch):
    from xnli_study.data import read_xnli_official

    tokenizer, model = tiny
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    xnli = read_xnli_official(sample_dir / "xnli", split="dev", languages=["en", "de", "fr"])
    probe = al.probe_set(xnli, max_sentences=20)
    monkeypatch.setattr(al, "EMBED_GROUP_SENTENCES", 45)
    assert al._embedding_groups({lang: [""] * 20 for lang in ("en", "de", "fr")}) == [["en", "de"], ["fr"]]
    assert al._embedding_groups({"en": [""] * 50, "de": [""] * 5}) == [["en"], ["de"]]  # a large one alone
    cached = al.cached_embeddings(str(tmp_path / "m"), probe, cache_dir=tmp_path / "c")
    for lang in ("en", "de", "fr"):
        alone = al.sentence_embeddings(model, tokenizer, probe.loc[probe["lang"] == lang, "text"].tolist())
        np.testing.assert_allclose(cached[lang], alone.astype(np.float16), rtol=2e-3, atol=2e-3)
        assert not np.allclose(cached[lang], cached["en" if lang != "en" else "de"], atol=1e-2)  # each its own


def test_alignment_metrics_table_covers_every_layer_and_language():
    emb = {lang: rng(i).normal(size=(3, 30, 8)) for i, lang in enumerate(["en", "fr", "de"])}
    emb["fr"] = 2.0 * emb["en"]
    table = al.alignment_metrics(emb)
    assert set(table["lang"]) == {"fr", "de"} and set(table["layer"]) == {0, 1, 2}
    assert set(table["metric"]) == set(al.PAIRWISE_METRICS)
    fr = table[(table["lang"] == "fr")].set_index(["layer", "metric"])["value"]
    assert fr.xs("retrieval", level="metric").eq(1.0).all()
    assert fr.xs("cka", level="metric").round(9).eq(1.0).all()


def test_headline_layer():
    assert al.headline_layer("auto", 12) == 8
    assert al.headline_layer("auto", 24) == 16
    assert al.headline_layer(2, 4) == 2
    with pytest.raises(ValueError):
        al.headline_layer(9, 4)


def test_both_directions_from_one_matrix_match_two_calls():
    x = rng(40).normal(size=(5000, 12))  # more rows than one chunk
    y = x + rng(41).normal(scale=1.2, size=x.shape)
    forward, backward = al.retrieval_both(x, y)
    assert forward == al.retrieval_accuracy(x, y)
    assert backward == al.retrieval_accuracy(y, x)
    assert 0.05 < forward < 0.95 and 0.05 < backward < 0.95


def test_doc_examples_run():
    import doctest

    result = doctest.testmod(al, verbose=False)
    assert result.failed == 0 and result.attempted >= 4


@pytest.mark.real
@pytest.mark.parametrize("split, premises", [("dev", 830), ("test", 1670)])
def test_probe_set_on_real_xnli(shared_data, split, premises):
    from xnli_study.data import check_parallel, read_xnli_xtreme
    from xnli_study.languages import XNLI_LANGUAGES

    xnli = read_xnli_xtreme(shared_data / "xnli" / "xtreme", split=split, languages=XNLI_LANGUAGES)
    check_parallel(xnli)
    probe = al.probe_set(xnli)
    en = probe[probe["lang"] == "en"]
    assert (en["kind"] == "premise").sum() == premises
    assert en["text"].str.strip().is_unique
    ids = probe.groupby("lang")["sid"].apply(tuple)
    assert ids.nunique() == 1 and len(ids) == 15


def test_every_metric_takes_float32_and_float64_alike():
    x64 = rng(50).normal(size=(120, 24))
    y64 = x64 + rng(51).normal(scale=0.8, size=x64.shape) + 0.5
    x32, y32 = x64.astype(np.float32), y64.astype(np.float32)
    for fn in (al.retrieval_accuracy, al.translation_cosine_margin, al.linear_cka):
        a, b = fn(x64, y64), fn(x32, y32)
        assert isinstance(a, float) and isinstance(b, float)
        assert a == pytest.approx(b, abs=1e-5), fn.__name__
    assert al.linear_cka(x32, y32, debiased=True) == pytest.approx(al.linear_cka(x64, y64, debiased=True), abs=1e-5)
    e64 = {"en": x64, "fr": y64 + 3.0}
    e32 = {k: v.astype(np.float32) for k, v in e64.items()}
    assert al.language_id_probe(e64) == al.language_id_probe(e32)


def test_cached_vectors_are_memory_mapped(tmp_path):
    np.save(tmp_path / "en.npy", np.ones((2, 3, 4), dtype=np.float16))
    loaded = al.load_cached(tmp_path, ["en"])
    assert isinstance(loaded["en"], np.memmap) and loaded["en"].dtype == np.float16
    table = al.alignment_metrics({"en": loaded["en"], "fr": loaded["en"]})
    assert set(table["layer"]) == {0, 1}


def test_debiased_cka_is_near_zero_where_biased_cka_drifts():
    """Unrelated random data at n=160, d=384: biased CKA is far from 0 (about 0.7), the debiased
    headline CKA is near 0; both are in the metric table, with the chance of each metric."""
    from xnli_study import alignment as al

    rng = np.random.default_rng(0)
    emb = {"en": rng.normal(size=(1, 160, 384)).astype(np.float32),
           "fr": rng.normal(size=(1, 160, 384)).astype(np.float32)}
    table = al.alignment_metrics(emb).set_index("metric")
    assert table.loc["cka", "value"] > 0.6
    assert abs(table.loc["cka_debiased", "value"]) < 0.05
    assert table.loc["retrieval", "chance"] == pytest.approx(1 / 160) and table.loc["cka_debiased", "chance"] == 0


def test_low_data_language_probe_separates_what_the_full_probe_saturates():
    from xnli_study import alignment as al

    rng = np.random.default_rng(1)
    shared = rng.normal(size=(200, 64))
    # weak language offsets: the probe with 160 training sentences per language mostly finds
    # them; with 16 it does clearly worse, still above chance; with no offset it is at chance (1/3)
    weak = {lang: shared + rng.normal(0, 1.0, shared.shape) + 0.4 * rng.normal(size=64) for lang in ("a", "b", "c")}
    neutral = {lang: shared + rng.normal(0, 0.5, shared.shape) for lang in ("a", "b", "c")}
    full, low = al.language_id_probe(weak), al.language_id_low_data(weak)
    assert full > 0.8 and 0.45 < low < full - 0.1
    assert abs(al.language_id_low_data(neutral) - 1 / 3) < 0.08
    rows = al.language_id_by_layer({k: v[None] for k, v in weak.items()})
    assert set(rows["metric"]) == {"language_id", "language_id_low_data"}
    assert rows["chance"].tolist() == pytest.approx([1 / 3, 1 / 3])


def test_a_removed_model_keeps_its_measured_vectors_and_names_the_fix(tmp_path, tiny, sample_dir):
    """training.save_models: a model removed after measurement leaves a note with its weights'
    fingerprint: the same probe reads the cached vectors; anything that needs the weights fails
    with one line naming save_models."""
    import copy

    from xnli_study import models, study
    from xnli_study.data import read_xnli_official
    from xnli_study.errors import DataError

    tokenizer, shared = tiny
    folder = tmp_path / "models" / "sst2" / "seed0" / "final"
    copy.deepcopy(shared).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    xnli = read_xnli_official(sample_dir / "xnli", split="dev", languages=["en", "de"])
    probe = al.probe_set(xnli, max_sentences=20)
    measured = al.cached_embeddings(str(folder), probe, cache_dir=tmp_path / "c")
    models.remove_model(folder, save_models="encoders",
                        weights=models.weights_fingerprint(models.load_encoder(str(folder))))
    assert [p.name for p in folder.iterdir()] == [models.REMOVED]  # the folder stays: stages stay complete
    again = al.cached_embeddings(str(folder), probe, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(measured["de"], again["de"])
    with pytest.raises(DataError, match="removed once its alignment was measured .training.save_models: encoders"):
        al.cached_embeddings(str(folder), al.probe_set(xnli, max_sentences=10), cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="save_models"):
        models.load_classifier(str(folder), num_labels=3, seed=0)
    # which checkpoints each setting removes
    assert [study.removable(s, "all") for s in ("pretrained", "intermediate", "final")] == [False, False, False]
    assert [study.removable(s, "encoders") for s in ("pretrained", "intermediate", "final")] == [False, False, True]
    assert [study.removable(s, "none") for s in ("pretrained", "intermediate", "final")] == [False, True, True]


@pytest.mark.parametrize("classes", [2, 5])
def test_ridge_classifier_is_scikit_learns_standardised_ridge(classes):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    r = rng(40 + classes)
    centres = r.normal(scale=0.6, size=(classes, 12))
    y = np.repeat(np.arange(classes), 60)
    x = centres[y] + r.normal(size=(len(y), 12)) * r.uniform(0.5, 3.0, size=12)
    x[:, 3] = 7.0  # a constant feature: scikit-learn leaves it unscaled
    test = centres[np.arange(400) % classes] + r.normal(size=(400, 12))
    reference = make_pipeline(StandardScaler(), RidgeClassifier(alpha=2.5)).fit(x, y).predict(test)
    ours = al.ridge_classifier(x, y, classes=classes, alpha=2.5)(test)
    assert 0.3 < (ours == np.arange(400) % classes).mean() < 1.0  # neither trivial nor perfect
    np.testing.assert_array_equal(ours, reference)
    # float32 input, as the probes pass: scikit-learn solves it in float32, which moves near-ties only
    x32, test32 = x.astype(np.float32), test.astype(np.float32)
    reference32 = make_pipeline(StandardScaler(), RidgeClassifier(alpha=2.5)).fit(x32, y).predict(test32)
    assert (al.ridge_classifier(x32, y, classes=classes, alpha=2.5)(test32) == reference32).mean() >= 0.99
