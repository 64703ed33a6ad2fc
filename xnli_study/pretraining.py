"""The tiny encoder P: a small BERT pretrained by masked language modelling on the monolingual
corpus of the synthetic world (``xnli_study.sample``; STUDY.md section 8).

No parallel data enters: whatever cross-lingual structure P has comes from the anchors the
pseudo-languages share with English (a share of their words, person names, digits), as in mOthello
(Hua et al. 2024). P is deterministic for its settings and cached by content
(:func:`~xnli_study.models.tiny_folder`) in a folder shared by runs: a later run with the same
settings reuses it, a changed setting builds another.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import torch

from .files import atomic_dir
from .models import build_tiny_encoder, build_tiny_tokenizer, pick_device, quiet_transformers, resolve_encoder_name
from .sample import corpus, english_training_text, held_out_clauses
from .training import replace_progress

log = logging.getLogger("xnli_study")


def pretraining_corpus(config) -> dict[str, list[str]]:
    """The monolingual sentences P is pretrained on, by language (none is an XNLI or MNLI item)."""
    settings = config.sample_settings()
    return corpus(settings, exclude=held_out_clauses(settings))


def prepare_pretrained(config) -> str:
    """Make P available and return its ``from_pretrained`` name. For ``tiny``, pretrain it unless
    the shared cache already holds it for these settings; other encoders are resolved as named."""
    name = resolve_encoder_name(config)
    if config.encoder.name != "tiny" or (Path(name) / "config.json").is_file():
        return name
    pretrain_tiny(config, Path(name))
    return name


def pretrain_tiny(config, folder: Path, *, progress: bool = True) -> Path:
    """Train the tokenizer and pretrain the tiny BERT by masked language modelling; save the
    encoder (with a pooler drawn from ``encoder.tiny.seed``) and the tokenizer to ``folder``
    atomically."""
    import datasets
    from transformers import (BertForMaskedLM, DataCollatorForLanguageModeling, Trainer,
                              TrainingArguments)

    tiny = config.encoder.tiny
    texts = [s for sentences in pretraining_corpus(config).values() for s in sentences]
    # the sample's English training text (MNLI, SST-2) too, so that the tokenizer knows its words
    tokenizer = build_tiny_tokenizer(texts + english_training_text(config.sample_settings()),
                                     vocab_size=tiny.vocab_size)
    encoder = build_tiny_encoder(tiny, vocab_size=len(tokenizer), seed=tiny.seed)
    log.info("pretraining the tiny encoder on %d sentences (%d languages), %s epochs", len(texts),
             len(config.languages), tiny.pretrain_epochs)
    if tiny.pretrain_epochs > 0:
        torch.manual_seed(tiny.seed)
        mlm = BertForMaskedLM(encoder.config)
        mlm.bert.load_state_dict(encoder.state_dict(), strict=False)  # the same initial weights
        enc = tokenizer(texts, truncation=True, max_length=tiny.max_position, return_special_tokens_mask=True)
        dataset = datasets.Dataset.from_dict(dict(enc))
        scratch = Path(tempfile.mkdtemp(prefix="pretrain-"))
        args = TrainingArguments(
            output_dir=str(scratch), num_train_epochs=tiny.pretrain_epochs,
            learning_rate=tiny.pretrain_learning_rate, per_device_train_batch_size=tiny.pretrain_batch_size,
            warmup_steps=0.06, weight_decay=0.01, seed=tiny.seed, data_seed=tiny.seed, save_strategy="no",
            logging_steps=50, report_to="none", disable_tqdm=not progress,
            use_cpu=pick_device(config.device).type == "cpu", dataloader_num_workers=0)
        collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=tiny.mask_probability,
                                                   seed=tiny.seed)
        try:
            with quiet_transformers():
                trainer = Trainer(model=mlm, args=args, train_dataset=dataset, data_collator=collator)
                replace_progress(trainer, progress)
                trainer.train()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        encoder.load_state_dict(mlm.bert.state_dict(), strict=False)  # the pooler keeps its seeded draw
    with atomic_dir(folder, keep_existing=True) as tmp:
        encoder.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return folder

