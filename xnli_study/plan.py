"""What a run will cost, before it runs: ``xnli-study plan --params P``.

One row per unit of work (stage, condition, seed): training examples, epochs, optimizer steps,
tokens processed (padding included), FLOPs, time at a given throughput, and the peak GPU memory
of the unit; then totals, GPU-hours and the disk the run fills. It never touches the hub or a
GPU: parameter counts come from the architecture configs in :mod:`xnli_study.architectures` (the
hub's ``config.json`` values of the known encoders) or from a local folder's ``config.json``, built
on PyTorch's ``meta`` device (no weights allocated).

The cost model is STUDY.md section 9: training 6 x N x T FLOPs, inference 2 x N x T (N the
parameters without embeddings, T the tokens processed), plus attention, 2 x layers x length x
hidden per token per pass (x3 for training).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .architectures import KNOWN_ARCHITECTURES
from .config import StudyConfig, looks_like_path
from .errors import ParamsError
from .models import package_model_folder
from .runfolder import throughput_file
from .tasks import TASK_SIZES, XNLI_ITEMS, XNLI_TOKENS, get_task
from .training import schedule

#: short names the benchmark accepts (``--random-init xlm-roberta-base``)
SHORT_NAMES = {name.split("/")[1]: name for name in KNOWN_ARCHITECTURES}

#: tokens per XNLI probe sentence (half a pair)
ALIGNMENT_TOKENS = XNLI_TOKENS // 2
#: dense bf16 peak of an H100 SXM (NVIDIA H100 datasheet), for the default throughput
H100_BF16_PEAK = 989e12
DEFAULT_MFU = 0.30
#: real tokens are this share of the tokens processed with length-grouped, dynamically padded
#: batches (the throughput benchmark measures the padding share of each path)
PADDING_FACTOR = 1.10
#: bytes per parameter while training with AdamW: fp32 weights, gradients, two moments
TRAIN_BYTES_PER_PARAM = 16


@dataclass(frozen=True)
class Architecture:
    name: str
    total: int  # every parameter
    embeddings: int  # the embedding matrices (words, positions, token types)
    layers: int
    hidden: int
    heads: int
    source: str

    @property
    def non_embedding(self) -> int:
        return self.total - self.embeddings


def architecture_config(name: str):
    """A transformers config for a known encoder (full hub id or short name), without the hub."""
    from transformers import AutoConfig

    full = SHORT_NAMES.get(name, name)
    if full not in KNOWN_ARCHITECTURES:
        raise ParamsError(f"no architecture written for {name!r}; known: {', '.join(KNOWN_ARCHITECTURES)}")
    values = dict(KNOWN_ARCHITECTURES[full])
    return AutoConfig.for_model(values.pop("model_type"), **values)


def count_parameters(config, name: str, source: str) -> Architecture:
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    embeddings = sum(p.numel() for n, p in model.named_parameters()
                     if "embeddings" in n and p.dim() == 2 and "LayerNorm" not in n)
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers")
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim")
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads")
    return Architecture(name, total, embeddings, layers, hidden, heads, source)


def architecture(config: StudyConfig) -> Architecture:
    """The encoder's size: written configs for the known hub encoders, ``config.json`` for a
    folder or a ``package:`` model, the tiny settings for ``tiny``."""
    from transformers import AutoConfig, BertConfig

    name = config.encoder.name
    if name == "tiny":
        t = config.encoder.tiny
        cfg = BertConfig(vocab_size=t.vocab_size, hidden_size=t.hidden_size, num_hidden_layers=t.num_layers,
                         num_attention_heads=t.num_heads, intermediate_size=t.intermediate_size,
                         max_position_embeddings=t.max_position)
        return count_parameters(cfg, name, "encoder.tiny settings")
    if name in KNOWN_ARCHITECTURES:
        return count_parameters(architecture_config(name), name, "the hub repository's config.json, as written in xnli_study/architectures.py")
    if name.startswith("package:"):
        folder = package_model_folder(name)
    else:
        folder = config.path(name)
    if (folder / "config.json").is_file():
        return count_parameters(AutoConfig.from_pretrained(str(folder)), name, f"{folder}/config.json")
    if looks_like_path(name):
        raise ParamsError(f"encoder.name: {str(folder)!r} holds no config.json; plan needs the model's config")
    raise ParamsError(f"encoder.name: {name!r} is not one of the encoders plan knows offline "
                      f"({', '.join(KNOWN_ARCHITECTURES)}); download it to a folder and name the folder")


# ---- sizes ---------------------------------------------------------------------------------------
def _rows_in(path: Path) -> int:
    """Data rows in a local file (lines, less a header for TSV/CSV) or every file of a folder."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    total = 0
    for f in files:
        with open(f, "rb") as handle:
            lines = sum(1 for line in handle if line.strip())
        total += max(0, lines - 1) if f.suffix in (".tsv", ".csv") else lines
    return total


def _examples(config: StudyConfig, name: str) -> tuple[int, str]:
    """Training examples of task ``name`` (``mnli`` for the MNLI stage) and where the number is from."""
    settings = config.mnli if name == "mnli_stage" else config.task_data(name)
    source, path, cap = settings.source, settings.path, settings.max_examples
    if source == "local" and path and config.data_path(path).exists():
        full, where = _rows_in(config.data_path(path)), "rows in the local file"
    elif source == "sample":
        sample = config.sample_settings()
        full = {"mnli_stage": sample.mnli_examples, "sst2": sample.sst2_examples}.get(
            name, sample.parallel_sentences * 2 * (len(config.languages) - 1))
        where = "the synthetic sample"
    else:
        full = TASK_SIZES["mnli" if name == "mnli_stage" else name].examples
        where = "registry size" + (" (hub)" if source == "hub" else "")
    if name in ("xnli_mt", "parallel_align") and source == "hub":  # the study's languages, of 14
        full = full * (len(config.languages) - 1) // 14
    return (min(cap, full) if cap else full), where


def _tokens_per_example(name: str, max_length: int, *, tiny: bool) -> tuple[float, int]:
    """(tokens per example, sequences per example) after truncation to ``max_length``."""
    size = TASK_SIZES["mnli" if name == "mnli_stage" else name]
    per_sequence = size.tokens / size.choices
    if tiny:  # the synthetic world's sentences: about 10 words, one token each
        per_sequence = 12 * (2 if size.choices == 1 and name not in ("sst2",) else 1)
    return min(per_sequence, max_length) * size.choices, size.choices


def flops_per_token(arch: Architecture, length: float, *, training: bool) -> float:
    attention = 2 * arch.layers * length * arch.hidden
    return (6 * arch.non_embedding + 3 * attention) if training else (2 * arch.non_embedding + attention)


def activation_bytes(arch: Architecture, *, batch: int, length: int, bytes_per_value: int) -> float:
    """Activations kept for the backward pass of a transformer encoder: per layer
    s·b·h·(34 + 5·a·s/h) bytes at 16 bits (Korthikanti et al. 2022, eq. 1), scaled for 32 bits."""
    s, b, h, a = length, batch, arch.hidden, arch.heads
    return arch.layers * s * b * h * (34 + 5 * a * s / h) * bytes_per_value / 2


def _peak_memory(arch: Architecture, settings, sequences: int) -> float:
    states = arch.total * TRAIN_BYTES_PER_PARAM
    value = 2 if settings.precision == "bf16" else 4
    return states + activation_bytes(arch, batch=settings.batch_size * sequences, length=settings.max_length,
                                      bytes_per_value=value)


# ---- the plan ------------------------------------------------------------------------------------
@dataclass
class Plan:
    units: pd.DataFrame
    arch: Architecture
    tokens_per_second: float
    throughput_source: str
    disk: pd.DataFrame

    @property
    def total_seconds(self) -> float:
        return float(self.units["seconds"].sum())

    @property
    def gpu_hours(self) -> float:
        return self.total_seconds / 3600


def default_throughput(arch: Architecture, *, length: float = 64) -> float:
    """Training tokens/s at ``DEFAULT_MFU`` of an H100's dense bf16 peak."""
    return DEFAULT_MFU * H100_BF16_PEAK / flops_per_token(arch, length, training=True)


def measured_throughput(config: StudyConfig, arch: Architecture) -> float | None:
    """Training tokens/s that ``benchmarks/training_throughput.py`` measured for this architecture
    on this machine (:func:`~xnli_study.runfolder.throughput_file`), if it did."""
    path = throughput_file(config.cache_root)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    devices = ("cuda", "cpu") if config.device == "auto" else (config.device,)
    for device in devices:
        entry = data.get(throughput_key(arch.layers, arch.hidden, device))
        if entry:
            return float(entry["train_tokens_per_second"])
    return None


def throughput_key(layers: int, hidden: int, device: str) -> str:
    """How the benchmark files its measurement: by architecture size and device type."""
    return f"{layers}x{hidden}:{device}"


def make_plan(config: StudyConfig, *, tokens_per_second: float | None = None, world_size: int = 1) -> Plan:
    """Every unit of the run with its cost (see the module docstring)."""
    arch = architecture(config)
    tiny = config.encoder.name == "tiny"
    if tokens_per_second:
        tps, source = tokens_per_second, "--tokens-per-second"
    elif (measured := measured_throughput(config, arch)) is not None:
        tps, source = measured, "measured by benchmarks/training_throughput.py on this machine"
    else:
        tps = default_throughput(arch)
        source = f"{DEFAULT_MFU:.0%} MFU of an H100's dense bf16 peak ({H100_BF16_PEAK / 1e12:.0f} TFLOP/s)"
    rows = []
    n_lang = len(config.languages)
    xnli_cap = config.xnli.max_items
    xnli_items = {k: min(v, xnli_cap) if xnli_cap else v for k, v in XNLI_ITEMS.items()}
    if config.xnli.source == "sample":
        xnli_items = {"dev": config.xnli.sample_items // 2, "test": config.xnli.sample_items}

    def unit(stage, condition, seed, examples, where, settings, per_example, sequences, extra_inference=0.0):
        plan = schedule(examples, settings, world_size=world_size)
        seq_len = per_example / sequences
        train_tokens = examples * settings.epochs * per_example * PADDING_FACTOR
        flops = train_tokens * flops_per_token(arch, seq_len, training=True)
        flops += extra_inference * flops_per_token(arch, seq_len, training=False)
        inference_seconds = extra_inference / (3 * tps)
        rows.append({
            "stage": stage, "condition": condition, "seed": seed, "examples": examples, "examples_from": where,
            "epochs": settings.epochs, "effective_batch": plan.effective_batch, "optimizer_steps": plan.total_steps,
            "train_tokens": train_tokens, "inference_tokens": extra_inference, "flops": flops,
            "seconds": train_tokens / tps + inference_seconds,
            "peak_memory_gb": _peak_memory(arch, settings, sequences) / 1e9,
        })

    inter = config.training.intermediate
    for cond in config.intermediate_conditions:
        spec = get_task(cond)
        examples, where = _examples(config, cond)
        train_examples = examples - math.ceil(examples * 0.1)  # a tenth is held out to score the task
        per_example, sequences = _tokens_per_example(cond, inter.max_length, tiny=tiny)
        # the held-out tenth: scored at every evaluation, or (alignment tasks) once after training and once for P
        passes = 2 if spec.is_alignment else inter.evals_per_epoch * inter.epochs
        held = (examples - train_examples) * per_example * passes
        for seed in config.seeds:
            unit("intermediate", cond, seed, train_examples, where, inter, per_example, sequences, held)
    mnli = config.training.mnli
    examples, where = _examples(config, "mnli_stage")
    per_example, _ = _tokens_per_example("mnli_stage", mnli.max_length, tiny=tiny)
    evals = mnli.evals_per_epoch * mnli.epochs * xnli_items["dev"] * per_example
    test = n_lang * xnli_items[config.xnli.eval_split] * min(XNLI_TOKENS if not tiny else 24, mnli.max_length)
    for cond in config.conditions:
        for seed in config.seeds:
            unit("mnli + xnli", cond, seed, examples, where, mnli, per_example, 1, evals + test)
    # alignment: one forward pass per checkpoint, language and probe sentence gives every layer
    sentences = config.alignment.max_sentences or (xnli_items[config.alignment.probe_split] * 4 // 3)
    length = min(ALIGNMENT_TOKENS if not tiny else 12, config.alignment.max_length)
    align_tokens = float(n_lang * sentences * length)
    memory = (arch.total * 4 + activation_bytes(arch, batch=config.alignment.batch_size,
                                                length=config.alignment.max_length, bytes_per_value=4) / 10) / 1e9
    checkpoints = [("pretrained", "-", -1)] + [
        (stage, cond, seed) for stage, conds in (("intermediate", config.intermediate_conditions),
                                                 ("final", config.conditions))
        for cond in conds for seed in config.seeds]
    for stage, cond, seed in checkpoints:
        rows.append({
            "stage": f"alignment ({stage})", "condition": cond, "seed": seed, "examples": n_lang * sentences,
            "examples_from": f"{n_lang} languages x {sentences} probe sentences", "epochs": 0.0,
            "effective_batch": config.alignment.batch_size, "optimizer_steps": 0, "train_tokens": 0.0,
            "inference_tokens": align_tokens, "flops": align_tokens * flops_per_token(arch, length, training=False),
            "seconds": align_tokens / (3 * tps), "peak_memory_gb": memory,
        })
    units = pd.DataFrame(rows)
    return Plan(units=units, arch=arch, tokens_per_second=tps, throughput_source=source,
                disk=disk_plan(config, arch, units, sentences=sentences))


def disk_plan(config: StudyConfig, arch: Architecture, units: pd.DataFrame, *, sentences: int) -> pd.DataFrame:
    """What a run leaves on disk, and the peak while it runs, by kind (bytes)."""
    encoder = arch.total * 4  # fp32 safetensors
    n_inter = len(config.seeds) * len(config.intermediate_conditions)
    n_final = len(config.seeds) * len(config.conditions)
    keep = config.training.save_models
    embeddings = ((1 + n_inter + n_final) * len(config.languages) * sentences * (arch.layers + 1)
                  * arch.hidden * 2)
    # tokenised data, once per run: MNLI, and each task whole (its seeds select their rows);
    # Arrow columns of input ids (int32), attention mask and token types (int8): 6 bytes a token
    inter = units[units["stage"] == "intermediate"].drop_duplicates("condition")
    tokens = float((inter["train_tokens"] / inter["epochs"] / PADDING_FACTOR / 0.9).sum())
    mnli = units[units["stage"] == "mnli + xnli"].head(1)
    tokens += float((mnli["train_tokens"] / mnli["epochs"] / PADDING_FACTOR).sum())
    tokenized = tokens * 6
    rows = [
        {"what": "intermediate encoders I_t", "count": n_inter, "peak_bytes": n_inter * encoder,
         "kept_bytes": n_inter * encoder if keep in ("all", "encoders") else 0},
        {"what": "final NLI models F_t", "count": n_final, "peak_bytes": n_final * encoder,
         "kept_bytes": n_final * encoder if keep == "all" else 0},
        {"what": "embedding cache (float16, every layer)", "count": 1 + n_inter + n_final,
         "peak_bytes": embeddings, "kept_bytes": embeddings},
        {"what": "tokenised data cache", "count": 1, "peak_bytes": tokenized, "kept_bytes": tokenized},
        # the best and the last checkpoint; resumable ones (checkpoint_every) are the best and the
        # last two, each holding AdamW's two moments beside the weights
        {"what": "training checkpoints (one unit at a time)", "count": 1,
         "peak_bytes": 3 * 3 * encoder if resumable(config) else 2 * encoder, "kept_bytes": 0},
    ]
    if config.encoder.name == "tiny":
        rows.append({"what": "pretrained tiny P (shared cache)", "count": 1, "peak_bytes": encoder,
                     "kept_bytes": encoder})
    return pd.DataFrame(rows)


def resumable(config) -> bool:
    """Whether the trainings save resumable checkpoints (``training.*.checkpoint_every``)."""
    return any(s.checkpoint_every != "off" for s in (config.training.intermediate, config.training.mnli))


def _human(n: float, unit: str = "") -> str:
    for factor, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.1f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_plan(plan: Plan, config: StudyConfig) -> str:
    """The plan as text: the units, totals, GPU-hours, memory and disk."""
    arch = plan.arch
    u = plan.units
    lines = [f"plan for profile {config.profile!r} ({len(config.conditions)} conditions x {len(config.seeds)} "
             f"seeds, {len(config.languages)} languages)",
             f"encoder {arch.name}: {arch.total / 1e6:.1f}M parameters, {arch.non_embedding / 1e6:.1f}M without "
             f"embeddings, {arch.layers} layers x {arch.hidden} ({arch.source})",
             f"throughput: {plan.tokens_per_second:,.0f} training tokens/s ({plan.throughput_source}); "
             "inference 3x that"]
    if config.device == "cpu" and "H100" in plan.throughput_source:
        lines.append("  this profile runs on device: cpu; give your CPU's figure with --tokens-per-second "
                     "(benchmarks/training_throughput.py prints it)")
    lines.append("")
    table = pd.DataFrame({
        "stage": u["stage"], "condition": u["condition"], "seed": u["seed"].map(lambda s: "-" if s < 0 else s),
        "examples": u["examples"].map(lambda n: f"{n:,}"), "epochs": u["epochs"].map(lambda e: f"{e:g}"),
        "batch": u["effective_batch"], "steps": u["optimizer_steps"].map(lambda n: f"{n:,}"),
        "tokens": (u["train_tokens"] + u["inference_tokens"]).map(_human),
        "FLOPs": u["flops"].map(_human), "time": u["seconds"].map(_duration),
        "peak GPU mem": u["peak_memory_gb"].map(lambda g: f"{g:.1f} GB"),
    })
    lines += table.to_string(index=False).splitlines()
    sources: dict[str, list[str]] = {}
    for stage, cond, src in zip(u["stage"], u["condition"], u["examples_from"]):
        sources.setdefault(src, []).append(cond if stage == "intermediate" else stage)
    lines += ["", "examples from: " + "; ".join(f"{src} ({', '.join(dict.fromkeys(names))})"
                                                for src, names in sources.items())]
    total_flops = float(u["flops"].sum())
    lines += ["", f"total: {_human(total_flops)}FLOPs, {_duration(plan.total_seconds)} "
                  f"= {plan.gpu_hours:.2f} GPU-hours at this throughput; peak GPU memory "
                  f"{u['peak_memory_gb'].max():.1f} GB (the largest unit)"]
    disk = plan.disk
    lines += ["", f"disk (training.save_models: {config.training.save_models}; all keeps every model, "
                  "encoders keeps I_t only, none removes each model once its alignment is measured):"]
    for row in disk.itertuples():
        lines.append(f"  {row.what:44s} x{row.count:<3d} peak {_human(row.peak_bytes, 'B'):>8s}   "
                     f"left after the run {_human(row.kept_bytes, 'B'):>8s}")
    lines.append(f"  {'total':44s}      peak {_human(float(disk['peak_bytes'].sum()), 'B'):>8s}   "
                 f"left after the run {_human(float(disk['kept_bytes'].sum()), 'B'):>8s}")
    lines.append("  changed by: training.save_models, seeds, conditions, alignment.max_sentences (the vectors of "
                 "every layer are kept), mnli.max_examples and tasks.<name>.max_examples (the tokenised data)")
    return "\n".join(lines)
