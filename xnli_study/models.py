"""Encoders: the in-process ``tiny`` model, hub ids and local folders; saving the encoder only.

The pretrained encoder P is named once in the params (``encoder.name``):

* ``tiny``: a WordPiece tokenizer and a small BERT built from a config with a fixed seed, then
  pretrained by masked language modelling on the synthetic world's corpus
  (:mod:`xnli_study.pretraining`), cached by content beside the run folders;
* a hub id (``FacebookAI/xlm-roberta-base``): loaded with ``transformers`` (from the local cache
  when the hub cannot be reached; otherwise a clear error within seconds);
* a local folder holding ``config.json`` and weights, loaded with ``from_pretrained``.

Between stages only the encoder passes on: :func:`save_encoder` writes ``model.base_model`` and
the tokenizer, so a model loaded from that folder for another task gets a freshly initialised head.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Iterable, Iterator

import torch

from .architectures import KNOWN_ARCHITECTURES
from .config import looks_like_path
from .errors import DataError, HubUnavailableError, ParamsError
from .files import atomic_dir
from .hub import hub_reachable
from .runfolder import pretrained_cache

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' info and warnings (e.g. the expected 'newly initialized' head)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()  # the per-load "Loading weights" bars
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def build_tiny_tokenizer(texts: Iterable[str], *, vocab_size: int, min_frequency: int = 3):
    """A cased WordPiece tokenizer learned from ``texts``; returns a transformers fast tokenizer.

    The pieces come from ``tokenizers`` (BERT normaliser and pre-tokeniser, WordPiece model,
    [CLS]/[SEP] post-processor); the vocabulary is chosen here, deterministically, because the
    trainers of ``tokenizers`` 0.23 break ties in hash order and give a different vocabulary on
    every run. The vocabulary holds the special tokens, every character seen (word-initial and
    ``##`` continuation), then the words and word pieces seen at least ``min_frequency`` times,
    most frequent first (ties by length, then text), up to ``vocab_size``. A string seen less often
    (a whole Thai sentence has no spaces) never becomes a token of its own.
    """
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({ch for word in words for ch in word})
    vocab = list(SPECIAL_TOKENS) + chars + [f"##{ch}" for ch in chars]
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        if len(word) > 1 and count >= min_frequency:
            pieces[word] += count  # whole words
        for k in range(2, min(len(word), 7)):
            pieces[word[:k]] += count  # word-initial pieces
        for i in range(1, len(word)):
            for k in range(2, min(len(word) - i, 6) + 1):
                pieces["##" + word[i:i + k]] += count  # continuation pieces
    seen = set(vocab)
    ranked = sorted((p for p, c in pieces.items() if c >= min_frequency and p not in seen),
                    key=lambda p: (-pieces[p], -len(p), p))
    vocab += ranked[: max(0, vocab_size - len(vocab))]
    tok = Tokenizer(models.WordPiece(vocab={t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    cls_id, sep_id = vocab.index("[CLS]"), vocab.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def build_tiny_encoder(settings, *, vocab_size: int, seed: int = 0):
    """A small BERT encoder (``transformers.BertModel``) with weights drawn from ``seed``."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=vocab_size, hidden_size=settings.hidden_size,
        num_hidden_layers=settings.num_layers, num_attention_heads=settings.num_heads,
        intermediate_size=settings.intermediate_size, max_position_embeddings=settings.max_position,
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    )
    torch.manual_seed(seed)
    return BertModel(config)


#: bump when the pretraining of the tiny encoder changes: caches of another version are not reused
TINY_VERSION = 2


def tiny_key(config) -> str:
    """The content key of the pretrained tiny encoder: its settings, the pretraining settings and
    the synthetic sample it is pretrained on (the sample is a function of its settings)."""
    data = {"tiny": config.encoder.tiny.model_dump(), "sample": config.sample_settings().as_dict(),
            "version": TINY_VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def tiny_folder(config) -> Path:
    """Where the pretrained tiny encoder P lives: a cache shared by every run of the output folder,
    keyed by content (:func:`tiny_key`)."""
    return pretrained_cache(config.cache_root, tiny_key(config))


def check_model_folder(folder: Path, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> None:
    """A local model folder must hold its weights as safetensors (pickle files only with
    ``encoder.allow_pickle``) and no custom model code (only with ``encoder.trust_remote_code``);
    raises ``ParamsError`` naming the fix. Nothing in the folder is loaded or run."""
    names = {p.name for p in folder.iterdir()}
    safe = any(n.endswith(".safetensors") or n == "model.safetensors.index.json" for n in names)
    pickled = [n for n in sorted(names) if n.endswith((".bin", ".pt", ".pth", ".ckpt")) or n == "pytorch_model.bin.index.json"]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if "auto_map" in config and not trust_remote_code:
        raise ParamsError(f"encoder.name: {str(folder)!r} needs its own Python code (auto_map in its config.json), "
                          "which runs when the model loads; use a model of a standard transformers architecture, "
                          "or set encoder.trust_remote_code: true if you trust that code")
    _check_vocabulary(folder, config)
    if safe:
        return
    if pickled and not allow_pickle:
        raise ParamsError(f"encoder.name: {str(folder)!r} holds its weights only as pickle files "
                          f"({', '.join(pickled)}), which can run code when loaded; convert them to safetensors "
                          "(model.save_pretrained(folder) saves safetensors), or set encoder.allow_pickle: true "
                          "if you trust the folder")
    if not pickled:
        raise ParamsError(f"encoder.name: {str(folder)!r} holds no weights (no *.safetensors file); it has "
                          f"{', '.join(sorted(names))}")


def tokenizer_size(folder: Path) -> int | None:
    """One more than the largest token id of the tokenizer saved in ``folder`` (``tokenizer.json``
    or a WordPiece ``vocab.txt``), read without loading it; None when neither is there."""
    path = folder / "tokenizer.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        vocab = (data.get("model") or {}).get("vocab") or {}
        ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
        ids += [t["id"] for t in data.get("added_tokens", [])]
        return max(ids) + 1 if ids else None
    path = folder / "vocab.txt"
    if path.is_file():
        return len(path.read_text(encoding="utf-8").splitlines())
    return None


def _check_vocabulary(folder: Path, config: dict) -> None:
    """The tokenizer saved beside a model must not produce ids beyond the model's embeddings."""
    size, embeddings = tokenizer_size(folder), config.get("vocab_size")
    if size is not None and isinstance(embeddings, int) and size > embeddings:
        raise ParamsError(f"encoder.name: the tokenizer in {str(folder)!r} has {size} token ids but the model's "
                          f"embeddings hold {embeddings} (vocab_size in config.json): the tokenizer belongs to "
                          "another model; save the model's own tokenizer into the folder "
                          "(tokenizer.save_pretrained(folder))")


def resolve_encoder_name(config) -> str:
    """The name to pass to ``from_pretrained`` for P; checks folders and hub ids early.

    Raises ``ParamsError`` for a folder that does not exist or holds no model, and
    ``HubUnavailableError`` for a hub id that is neither reachable nor cached.
    """
    name = config.encoder.name
    if name == "tiny":
        return str(tiny_folder(config))
    if name.startswith("package:"):
        folder = package_model_folder(name)
        check_model_folder(folder, allow_pickle=config.encoder.allow_pickle,
                           trust_remote_code=config.encoder.trust_remote_code)
        return str(folder)
    candidate = config.path(name)
    if looks_like_path(name) or candidate.is_dir():
        if not candidate.is_dir():
            raise ParamsError(f"encoder.name: folder {str(candidate)!r} does not exist"
                              f"{config.relative_to(name, data=False)}; give a hub id, "
                              "a folder holding config.json and weights, or 'tiny'")
        if not (candidate / "config.json").is_file():
            raise ParamsError(f"encoder.name: {str(candidate)!r} holds no config.json; it is not a "
                              "transformers model folder")
        check_model_folder(candidate, allow_pickle=config.encoder.allow_pickle,
                           trust_remote_code=config.encoder.trust_remote_code)
        return str(candidate)
    if name.count("/") != 1 and not name.replace("-", "").replace("_", "").isalnum():
        raise ParamsError(f"encoder.name: {name!r} is neither 'tiny', a folder, nor a hub id "
                          "such as 'FacebookAI/xlm-roberta-base'")
    if not hub_reachable():
        from transformers import AutoConfig

        try:
            AutoConfig.from_pretrained(name, revision=config.encoder.revision, local_files_only=True)
        except (OSError, ValueError):
            raise HubUnavailableError(
                f"encoder {name!r} must be downloaded from the Hugging Face hub, which cannot be "
                "reached (offline?), and it is not in the local cache. Download it once with "
                f"`hf download {name} --local-dir <folder>` on a machine online and set "
                "encoder.name: <folder>, or use encoder.name: tiny."
            ) from None
    return name


def encoder_depth(config, name: str) -> int | None:
    """Number of transformer layers of the encoder (None when it cannot be known offline)."""
    if config.encoder.name == "tiny":
        return config.encoder.tiny.num_layers
    folder = Path(name)
    if (folder / "config.json").is_file():
        data = json.loads((folder / "config.json").read_text())
        return data.get("num_hidden_layers") or data.get("n_layers")
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(name, revision=config.encoder.revision,
                                          local_files_only=not hub_reachable()).num_hidden_layers
    except (OSError, ValueError, AttributeError):
        known = KNOWN_ARCHITECTURES.get(name, {})
        return known.get("num_hidden_layers") or known.get("n_layers")


def known_depth(config) -> int | None:
    """The encoder's number of layers where it is known without the network or loading a model:
    the tiny encoder's settings, a local folder's ``config.json``, the architectures written in
    :mod:`xnli_study.architectures`; else None."""
    name = config.encoder.name
    if name == "tiny":
        return config.encoder.tiny.num_layers
    folder = package_model_folder(name) if name.startswith("package:") else config.path(name)
    if (folder / "config.json").is_file():
        data = json.loads((folder / "config.json").read_text())
        return data.get("num_hidden_layers") or data.get("n_layers")
    known = KNOWN_ARCHITECTURES.get(name, {})
    return known.get("num_hidden_layers") or known.get("n_layers")


def package_model_folder(name: str) -> Path:
    """The folder of a model shipped inside an installed Python package: ``package:<pkg>/<folder>``."""
    import importlib.util

    package, _, sub = name.removeprefix("package:").partition("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ParamsError(f"encoder.name: {name!r}: Python package {package!r} is not installed; "
                          f"install it (pip install {package.replace('_', '-')}) or name another encoder")
    folder = Path(list(spec.submodule_search_locations)[0]) / sub
    if not (folder / "config.json").is_file():
        raise ParamsError(f"encoder.name: {name!r}: {folder} holds no config.json")
    return folder


def freeze_lower_layers(model, n_layers: int) -> int:
    """Freeze layers ``0 .. n_layers - 1`` of ``model``'s encoder, numbered as in the alignment
    tables: layer 0 is the embeddings, layer k the k-th transformer layer. ``1`` freezes the
    embeddings only; ``0`` trains everything.

    Returns the number of parameters left trainable. Works for BERT-, RoBERTa-, XLM-R- and
    DeBERTa-style encoders (``base_model.embeddings`` and ``base_model.encoder.layer``).
    """
    if n_layers <= 0:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    base = model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not hasattr(base, "embeddings"):
        raise ParamsError(f"freeze_layers: {type(base).__name__} has no embeddings/encoder.layer to freeze")
    if n_layers - 1 > len(layers):
        raise ParamsError(f"freeze_layers: {n_layers} but the encoder has only layers 0..{len(layers)} "
                          "(0 is the embeddings)")
    for module in [base.embeddings, *list(layers)[:n_layers - 1]]:
        for param in module.parameters():
            param.requires_grad = False
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def load_tokenizer(name: str, *, revision: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code,
                                             local_files_only=not hub_reachable())


#: what a removed model's folder holds instead of weights (``training.save_models``)
REMOVED = "removed.json"


def removed_note(name: str | Path) -> dict | None:
    """The note left by :func:`remove_model` in a model folder, or None."""
    path = Path(name) / REMOVED
    return json.loads(path.read_text()) if path.is_file() else None


def ensure_present(name: str | Path) -> None:
    """Raise ``DataError`` for a model folder whose weights were removed after measurement."""
    note = removed_note(name)
    if note is not None:
        raise DataError(f"{name}: this model was removed once its alignment was measured "
                        f"(training.save_models: {note['save_models']}); to use it again, train it again: delete "
                        "the record of the unit that trained it (units/<stage>/<condition>-seed<k>/record.json "
                        "in the run folder) and run the same command, which trains that unit alone; "
                        "training.save_models: all keeps every model")


def remove_model(folder: str | Path, *, save_models: str, weights: str) -> Path:
    """Replace a model folder by a note (its weights fingerprint, so the alignment measured on it
    stays readable from the embeddings cache); the folder stays, so stages stay complete."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        (tmp / REMOVED).write_text(json.dumps({"save_models": save_models, "weights": weights}) + "\n")
    return folder


def load_encoder(name: str, *, revision: str | None = None, trust_remote_code: bool = False):
    """The bare encoder (``AutoModel``) of a checkpoint, in eval mode; heads are dropped.
    ``trust_remote_code`` (``encoder.trust_remote_code``) lets a model with its own code load."""
    from transformers import AutoModel

    ensure_present(name)
    with quiet_transformers():
        model = AutoModel.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code,
                                          local_files_only=not hub_reachable())
    return model.eval()


def load_classifier(name: str, *, num_labels: int, seed: int, label_names: tuple[str, ...] | None = None,
                    revision: str | None = None, trust_remote_code: bool = False):
    """An ``AutoModelForSequenceClassification`` on the encoder in ``name``.

    When ``name`` holds an encoder only (see :func:`save_encoder`), the head is freshly initialised
    from ``seed``, so the same seed gives the same head.
    """
    from transformers import AutoModelForSequenceClassification

    ensure_present(name)

    kwargs = {}
    if label_names:
        kwargs = {"id2label": dict(enumerate(label_names)),
                  "label2id": {n: i for i, n in enumerate(label_names)}}
    torch.manual_seed(seed)
    with quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=num_labels, revision=revision, local_files_only=not hub_reachable(),
            trust_remote_code=trust_remote_code, **kwargs,
        )


def load_nli_start(pretrained: str, encoder: str | None, *, seed: int, label_names: tuple[str, ...],
                   revision: str | None = None, trust_remote_code: bool = False):
    """The starting point of an MNLI model F_t: the same for every condition but its encoder layers.

    The classifier is built on P (``pretrained``), so its head is initialised from ``seed`` and its
    pooler is P's, whatever the condition (STUDY.md section 1: equal starting points). For a
    condition with an intermediate encoder (``encoder``, a folder written by :func:`save_encoder`),
    that encoder's embeddings and layers then replace P's; its pooler, if it has one, is not used
    (after a QA task a BERT encoder has none, after a classification task a trained one).
    Raises ``DataError`` when the intermediate encoder does not fit P's architecture.
    """
    model = load_classifier(pretrained, num_labels=len(label_names), label_names=label_names, seed=seed,
                            revision=revision, trust_remote_code=trust_remote_code)
    if encoder is None:
        return model
    trained = {k: v for k, v in load_encoder(encoder, trust_remote_code=trust_remote_code).state_dict().items()
               if not k.startswith("pooler.")}
    missing, unexpected = model.base_model.load_state_dict(trained, strict=False)
    if unexpected or [k for k in missing if not k.startswith("pooler.")]:
        raise DataError(f"{encoder}: the intermediate encoder does not fit P's architecture "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model


_HEADS = {"single": "AutoModelForSequenceClassification", "pair": "AutoModelForSequenceClassification",
          "multiple_choice": "AutoModelForMultipleChoice", "extractive_qa": "AutoModelForQuestionAnswering",
          # the alignment tasks train the encoder itself: no head
          "parallel": "AutoModel", "lexicon": "AutoModel"}


def load_task_model(name: str, *, task_format: str, label_names: tuple[str, ...], seed: int,
                    revision: str | None = None, trust_remote_code: bool = False):
    """The encoder in ``name`` with a fresh, seeded head for a task of ``task_format``: a
    classifier, a multiple-choice scorer (one score per choice) or a span (start/end) head; the
    alignment formats get the bare encoder."""
    if task_format in ("single", "pair"):
        return load_classifier(name, num_labels=len(label_names), label_names=label_names, seed=seed,
                               revision=revision, trust_remote_code=trust_remote_code)
    import transformers

    auto = getattr(transformers, _HEADS[task_format])
    torch.manual_seed(seed)
    with quiet_transformers():
        return auto.from_pretrained(name, revision=revision, local_files_only=not hub_reachable(),
                                    trust_remote_code=trust_remote_code)


def save_encoder(model, tokenizer, folder: str | Path) -> Path:
    """Save the encoder only (``model.base_model``, no task head) and the tokenizer, atomically."""
    folder = Path(folder)
    encoder = model.base_model
    with atomic_dir(folder) as tmp:
        encoder.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder


def save_model(model, tokenizer, folder: str | Path) -> Path:
    """Save a whole model (encoder and head) and its tokenizer, atomically."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder


def weights_fingerprint(model) -> str:
    """SHA-256 of every parameter and buffer of ``model``: changes whenever any weight changes."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:20]


def pick_device(device: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; an explicit device must exist."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError("device: 'cuda' but no CUDA GPU is visible; use device: auto or cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ParamsError("device: 'mps' but MPS is not available; use device: auto or cpu")
    return torch.device(device)
