"""The study's params: one YAML file, validated into one typed object before any work starts.

Relative paths in a params file are resolved against the folder that holds the file, so a run
behaves the same whatever the working directory. ``load_params`` is the only entry point; it raises
:class:`~xnli_study.errors.ParamsError` with one line that names the key or value and what is
allowed.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ParamsError
from .languages import XNLI_LANGUAGES
from .sample import DEFAULT_ANCHOR_SHARE, SampleSettings
from .tasks import TASKS

Device = Literal["auto", "cpu", "cuda", "mps"]
#: settings that never change a result (where the run lives, what it and its profile are called,
#: prose): no fingerprint covers them
NOT_FINGERPRINTED = ("output_dir", "cache_dir", "run_name", "profile", "description", "limits", "base_dir",
                     # what stays on disk, not what is computed; a resumed training equals an
                     # uninterrupted one, so the checkpoint interval changes no result
                     "training.save_models", "training.intermediate.checkpoint_every",
                     "training.mnli.checkpoint_every",
                     # how processes are launched; their number (distributed.processes) is fingerprinted
                     "distributed.accelerate_config",
                     # where the training logs are also sent (TensorBoard, wandb, ...)
                     "training.report_to")

#: the Trainer's logging integrations ``training.report_to`` may name: (the module it imports, the
#: package that installs it)
TRACKERS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
            "mlflow": ("mlflow", "mlflow"), "comet_ml": ("comet_ml", "comet-ml"), "clearml": ("clearml", "clearml"),
            "neptune": ("neptune", "neptune"), "dvclive": ("dvclive", "dvclive"),
            "codecarbon": ("codecarbon", "codecarbon"), "azure_ml": ("azureml", "azureml-core"),
            "flyte": ("flytekit", "flytekit"), "dagshub": ("dagshub", "dagshub"), "trackio": ("trackio", "trackio"),
            "swanlab": ("swanlab", "swanlab")}


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as one level of dotted names; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def settings_hash(settings: dict) -> str:
    """A short, stable hash of JSON-able settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Strict(BaseModel):
    # defaults are validated like values from a file, so 4 and 4.0 fingerprint alike
    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)


class TinyEncoderConfig(_Strict):
    """Size of the in-process ``tiny`` encoder (a BERT-style model built from a config)."""

    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(128, ge=8)
    vocab_size: int = Field(3000, ge=100)
    max_position: int = Field(128, ge=16)
    seed: int = 0  # the random initial weights of P and the order of its pretraining
    # masked-LM pretraining on the synthetic world's monolingual corpus (0 epochs: random weights)
    pretrain_epochs: float = Field(4.0, ge=0)
    pretrain_learning_rate: float = Field(1e-3, gt=0)
    pretrain_batch_size: int = Field(64, ge=1)
    mask_probability: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "TinyEncoderConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}"
            )
        return self


class EncoderConfig(_Strict):
    """The encoder under study: ``tiny``, a hub id (``FacebookAI/xlm-roberta-base``), a folder, or
    ``package:<python package>/<folder>`` for a model shipped inside an installed package."""

    name: str = "tiny"
    revision: str | None = None
    # a model folder whose weights are pickle files (pytorch_model.bin) is refused unless this is
    # true: unpickling can run code; safetensors files cannot
    allow_pickle: bool = False
    # a model whose config needs its own Python code (auto_map) is refused unless this is true:
    # that code runs on loading
    trust_remote_code: bool = False
    tiny: TinyEncoderConfig = TinyEncoderConfig()


class XnliConfig(_Strict):
    """Where XNLI comes from. Model selection always uses English ``dev``; evaluation ``eval_split``."""

    source: Literal["sample", "hub", "official", "xtreme"] = "sample"
    # official: the XNLI-1.0 folder (xnli.dev.tsv, xnli.test.tsv); xtreme: the folder of
    # {dev,test}-{lang}.tsv files
    path: str | None = None
    # XTREME test files carry no labels: a labelled, row-parallel file (premise, hypothesis,
    # label) supplies them, e.g. XGLUE's German test; labels_lang names its language for a check
    labels_from: str | None = None
    labels_lang: str | None = None
    hub_id: str = "facebook/xnli"
    eval_split: Literal["dev", "test"] = "test"
    # cap per language and split: a seeded random sample of item ids, the same in every language
    max_items: int | None = Field(None, ge=1)
    items_seed: int = 0
    sample_items: int = Field(120, ge=60)  # test items per language written for source=sample

    @model_validator(mode="after")
    def _folder_for_files(self) -> "XnliConfig":
        if self.source in ("official", "xtreme") and not self.path:
            what = "the unpacked XNLI-1.0 folder" if self.source == "official" else "the folder of {dev,test}-<lang>.tsv"
            raise ValueError(f"source '{self.source}' needs xnli.path: {what}")
        if self.source == "xtreme" and self.eval_split == "test" and not self.labels_from:
            raise ValueError("XTREME's test files carry no labels, so eval_split: test cannot be scored; set "
                             "xnli.labels_from to a labelled row-parallel test file (with xnli.labels_lang), or "
                             "xnli.eval_split: dev")
        return self


class SampleConfig(_Strict):
    """The synthetic world of the smoke profile (``xnli_study.sample``, STUDY.md section 8)."""

    # the share of each pseudo-language's vocabulary written as the English word (an anchor), one
    # number for every language or one per language; at most 0.5. Person names and digits are
    # shared by every language besides.
    anchor_share: float | dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_ANCHOR_SHARE))
    corpus_sentences: int = Field(600, ge=10)  # monolingual sentences per language, for pretraining P
    parallel_sentences: int = Field(300, ge=10)  # parallel events (translate-train and alignment tasks)

    @field_validator("anchor_share")
    @classmethod
    def _shares_in_range(cls, value):
        shares = value if isinstance(value, dict) else {"every language": value}
        for lang, share in shares.items():
            if isinstance(value, dict) and (lang not in XNLI_LANGUAGES or lang == "en"):
                raise ValueError(f"unknown pseudo-language {lang!r}; allowed: "
                                 f"{' '.join(sorted(set(XNLI_LANGUAGES) - {'en'}))}")
            if not 0 <= share <= 0.5:
                raise ValueError(f"share {share} for {lang} is outside 0..0.5")
        return value

    def shares(self) -> dict[str, float]:
        """The anchor share of every pseudo-language (a language left out of a mapping gets 0)."""
        if isinstance(self.anchor_share, dict):
            return {lang: float(self.anchor_share.get(lang, 0.0)) for lang in XNLI_LANGUAGES if lang != "en"}
        return {lang: float(self.anchor_share) for lang in XNLI_LANGUAGES if lang != "en"}


class MnliConfig(_Strict):
    """English MultiNLI for the target stage."""

    source: Literal["sample", "hub", "local"] = "sample"
    # source=local: a MultiNLI file in any common layout (JSONL, multinli_1.0 .jsonl/.txt, GLUE TSV)
    path: str | None = None
    hub_id: str = "nyu-mll/multi_nli"
    hub_config: str | None = None  # "mnli" with hub_id nyu-mll/glue
    split: str = "train"
    max_examples: int | None = Field(2000, ge=1)

    @model_validator(mode="after")
    def _file_for_local(self) -> "MnliConfig":
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs mnli.path: a MultiNLI file (JSONL, multinli_1.0 "
                             ".jsonl or .txt, or GLUE TSV)")
        return self


class TaskDataConfig(_Strict):
    """Data settings of one intermediate task."""

    source: Literal["sample", "hub", "local"] = "hub"
    path: str | None = None
    max_examples: int | None = Field(2000, ge=1)
    # alignment tasks only (parallel_align, lexical_align): the layer they align (0 = the
    # embedding output; unset: the task's default for the encoder's depth) and the InfoNCE temperature
    layer: int | None = Field(None, ge=0)
    temperature: float = Field(0.05, gt=0, le=1)

    @model_validator(mode="after")
    def _file_for_local(self) -> "TaskDataConfig":
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs a path: the task's file or folder in its own format")
        return self


class StageTrainingConfig(_Strict):
    """Optimisation settings of one training stage."""

    epochs: float = Field(2.0, gt=0)
    learning_rate: float = Field(2e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    max_length: int = Field(128, ge=8)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    evals_per_epoch: int = Field(1, ge=1)  # checkpoints scored on English dev per epoch
    # freeze layers 0..N-1 (0 = the embeddings, as in the alignment tables; CPU budgets); 0 trains all
    freeze_layers: int = Field(0, ge=0)
    # bf16: mixed precision (CUDA GPUs with bf16, CPUs with AVX512-BF16 or AMX); fp32 otherwise
    precision: Literal["fp32", "bf16"] = "fp32"
    # optimizer steps accumulate this many batches: the effective batch is
    # batch_size x gradient_accumulation_steps x devices (e.g. 8 x 4 = 32 at length 256 on XLM-R large)
    gradient_accumulation_steps: int = Field(1, ge=1)
    # torch.compile the model before training (CUDA; pays on long runs, costs a minute to compile)
    compile: bool = False
    # a resumable checkpoint (weights, optimizer, scheduler, RNG) every N optimizer steps, "eval" at
    # each evaluation interval, or "off"; a rerun after a crash resumes from the last one. The MNLI
    # training saves at each evaluation for model selection, so it takes "eval" or "off" only.
    checkpoint_every: Literal["eval", "off"] | int = "eval"

    @field_validator("checkpoint_every", mode="before")
    @classmethod
    def _off_unquoted(cls, value):
        if value is True:
            raise ValueError("true is not an interval; give a number of optimizer steps, 'eval' or 'off'")
        return "off" if value is False else value  # YAML reads a bare off as false

    @field_validator("checkpoint_every")
    @classmethod
    def _positive_interval(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{value} is not a number of steps; give a positive number, 'eval' or 'off'")
        return value

    def effective_batch(self, devices: int = 1) -> int:
        """Examples per optimizer step: batch x accumulation x devices."""
        return self.batch_size * self.gradient_accumulation_steps * devices


class TrainingConfig(_Strict):
    intermediate: StageTrainingConfig = StageTrainingConfig(epochs=3)
    mnli: StageTrainingConfig = StageTrainingConfig(epochs=2)
    # the Trainer's integrations that also receive every training's logs: tensorboard (event files
    # in the run folder's logs/), wandb, mlflow, ... (configured as each documents). Changes no result.
    report_to: list[str] = []

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in TRACKERS]
        if unknown:
            raise ValueError(f"unknown tracker {unknown[0]!r}; use a list of: {', '.join(TRACKERS)} "
                             "(or [] for none)")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _mnli_checkpoints_at_evaluations(self) -> "TrainingConfig":
        if isinstance(self.mnli.checkpoint_every, int):
            raise ValueError(
                f"mnli.checkpoint_every: {self.mnli.checkpoint_every} steps; the MNLI training saves at each "
                "evaluation (model selection keeps the best one), so use 'eval' (resumable) or 'off', and "
                "set how often with training.mnli.evals_per_epoch")
        return self
    # which trained models stay on disk once the alignment stage has measured them: all (every
    # intermediate encoder and final NLI model), encoders (the intermediate encoders; the final
    # models are removed), none (both removed). Changes no result, only the disk a run fills.
    save_models: Literal["all", "encoders", "none"] = "all"


class DistributedConfig(_Strict):
    """Data-parallel training: each training unit runs as ``accelerate launch`` with ``processes``
    processes (one per GPU), the ``Trainer`` splitting every optimizer step's batch between them.
    The global batch is batch_size x gradient_accumulation_steps x processes."""

    # 1: each training runs inside the stage's own process (notebook kernel), on one device
    processes: int = Field(1, ge=1)
    # Accelerate's own config file (``accelerate config``) for what the launch takes beyond the
    # process count: several nodes, their addresses and ranks; its num_processes must equal processes
    accelerate_config: str | None = None
    # 1: a stage's training units run one after the other. N > 1: they run side by side in N
    # worker processes on this node, each with an Nth of the CPU cores as its threads (for small
    # models on CPUs, which cannot keep every core busy with one training). Not with processes > 1.
    unit_processes: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _one_way_of_parallel(self) -> "DistributedConfig":
        if self.unit_processes > 1 and (self.processes > 1 or self.accelerate_config is not None):
            raise ValueError(f"unit_processes: {self.unit_processes} with a data-parallel launch (processes: "
                             f"{self.processes}); use one: unit_processes for units side by side on a CPU node, "
                             "processes for each unit across devices")
        return self

    @property
    def launched(self) -> bool:
        """Whether training units run under ``accelerate launch``."""
        return self.processes > 1 or self.accelerate_config is not None


class AlignmentConfig(_Strict):
    """Alignment probe set and settings (STUDY.md section 2)."""

    probe_split: Literal["dev", "test"] = "test"
    max_sentences: int | None = Field(None, ge=2)  # cap on distinct probe sentences (seeded)
    layers: Literal["all"] | list[int] = "all"
    headline_layer: Literal["auto"] | int = "auto"  # auto: round(2/3 of the depth), 8 of 12
    batch_size: int = Field(64, ge=1)
    max_length: int = Field(128, ge=8)
    language_id_sentences: int | None = Field(300, ge=10)  # per language; null skips the probe
    seed: int = 0


class StatsConfig(_Strict):
    """Uncertainty (STUDY.md section 4): bootstrap and permutation resamples, and their seed."""

    resamples: int = Field(2000, ge=200)
    seed: int = 0
    # the Holm family: every (condition, language) test together (default), or, narrower, each
    # language across conditions only; the averages over languages are corrected across conditions
    correct_across: Literal["conditions_and_languages", "conditions"] = "conditions_and_languages"


class StudyConfig(_Strict):
    """The whole study: one object, built from one YAML profile."""

    profile: str
    description: str = ""
    limits: str = ""  # what the profile's numbers can and cannot show; printed in the report
    run_name: str
    output_dir: str = "../outputs"
    #: the folder of caches shared by runs (the pretrained tiny encoder); default output_dir
    cache_dir: str | None = None
    #: folder that relative data paths (xnli.path, xnli.labels_from, mnli.path, tasks.*.path) are
    #: read from; unset, they resolve against the params file's folder like every other path
    data_dir: str | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    device: Device = "auto"
    encoder: EncoderConfig = EncoderConfig()
    languages: list[str] = Field(default_factory=lambda: list(XNLI_LANGUAGES))
    xnli: XnliConfig = XnliConfig()
    mnli: MnliConfig = MnliConfig()
    sample: SampleConfig = SampleConfig()
    conditions: list[str] = Field(default_factory=lambda: ["none"])
    tasks: dict[str, TaskDataConfig] = Field(default_factory=dict)
    training: TrainingConfig = TrainingConfig()
    alignment: AlignmentConfig = AlignmentConfig()
    stats: StatsConfig = StatsConfig()
    distributed: DistributedConfig = DistributedConfig()
    #: folder the relative paths were resolved against (set by ``load_params``)
    base_dir: str = "."

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        for code in value:
            if code not in XNLI_LANGUAGES:
                raise ValueError(
                    f"unknown language code {code!r}; allowed: {' '.join(sorted(XNLI_LANGUAGES))}"
                )
        if "en" not in value:
            raise ValueError("must include 'en' (training and model selection are in English)")
        if len(set(value)) != len(value):
            raise ValueError("lists a language twice")
        return value

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != "none" and name not in TASKS:
                raise ValueError(
                    f"unknown task {name!r}; allowed: none {' '.join(sorted(TASKS))}"
                )
        if "none" not in value:
            raise ValueError("must include 'none', the baseline every condition is compared with")
        if len(set(value)) != len(value):
            twice = sorted({c for c in value if value.count(c) > 1})
            raise ValueError(f"lists {', '.join(map(repr, twice))} more than once; name each condition once")
        return value

    @field_validator("tasks")
    @classmethod
    def _known_task_keys(cls, value: dict[str, TaskDataConfig], info) -> dict[str, TaskDataConfig]:
        for name, settings in value.items():
            if name not in TASKS:
                raise ValueError(f"unknown task {name!r}; allowed: {' '.join(sorted(TASKS))}")
            spec = TASKS[name]
            if settings.source == "sample" and not spec.has_sample:
                samples = " ".join(t for t, spec in TASKS.items() if spec.has_sample)
                raise ValueError(f"task {name!r} has no synthetic sample (tasks with one: {samples}); "
                                 f"set tasks.{name}.source to hub or local")
            if settings.source == "hub" and not spec.hub:
                raise ValueError(f"task {name!r} has no hub source; set tasks.{name}.source to local "
                                 f"(with path: {spec.local_format})" + (" or sample" if spec.has_sample else ""))
            if settings.source == "sample" and spec.is_alignment and info.data.get("xnli") is not None \
                    and info.data["xnli"].source != "sample":
                raise ValueError(f"tasks.{name}.source: sample aligns the synthetic pseudo-languages, "
                                 "not the real languages of xnli.source; use local or hub data")
            unused = {k for k in ("layer", "temperature")
                      if getattr(settings, k) != TaskDataConfig.model_fields[k].default}
            if unused and not spec.is_alignment:
                raise ValueError(f"tasks.{name}: {', '.join(sorted(unused))} applies to the alignment tasks "
                                 f"only ({' '.join(t for t, s in TASKS.items() if s.is_alignment)})")
        return value

    @model_validator(mode="after")
    def _hub_less_tasks_named(self) -> "StudyConfig":
        for name in self.intermediate_conditions:
            if name not in self.tasks and not TASKS[name].hub:
                spec = TASKS[name]
                raise ValueError(f"conditions: task {name!r} has no hub source, so tasks.{name} must say "
                                 f"where its data is: source: local with path ({spec.local_format})"
                                 + (", or source: sample" if spec.has_sample else ""))
        return self

    @model_validator(mode="after")
    def _alignment_negatives_from_one_batch(self) -> "StudyConfig":
        aligning = [c for c in self.intermediate_conditions if TASKS[c].is_alignment]
        if aligning and self.training.intermediate.gradient_accumulation_steps > 1:
            raise ValueError(
                f"training.intermediate.gradient_accumulation_steps: {aligning[0]} draws its InfoNCE "
                "negatives from one batch, and accumulating batches adds none; set it to 1 and raise "
                "training.intermediate.batch_size instead")
        return self

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("lists a seed twice")
        return value

    @field_validator("run_name")
    @classmethod
    def _plain_run_name(cls, value: str) -> str:
        if not value or "/" in value or value.startswith("."):
            raise ValueError("must be a plain folder name such as 'smoke'")
        return value

    # ---- derived values -------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """The run folder: ``output_dir / run_name``."""
        return self.path(self.output_dir) / self.run_name

    @property
    def cache_root(self) -> Path:
        """The folder that holds the caches shared by runs (``cache_dir``, else ``output_dir``)."""
        return self.path(self.cache_dir or self.output_dir)

    @property
    def intermediate_conditions(self) -> list[str]:
        """Conditions that train on an intermediate task (all but ``none``)."""
        return [c for c in self.conditions if c != "none"]

    def path(self, value: str) -> Path:
        """Resolve a path from the params file against ``base_dir``."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else (Path(self.base_dir) / p).resolve()

    def data_path(self, value: str) -> Path:
        """Resolve a data path: against ``data_dir`` when it is set, else like :meth:`path`."""
        p = Path(value).expanduser()
        if p.is_absolute() or self.data_dir is None:
            return self.path(value)
        return (self.path(self.data_dir) / p).resolve()

    def relative_to(self, value: str, *, data: bool = True) -> str:
        """What a relative path of the params is read against, for messages ("" for an absolute one)."""
        if Path(value).expanduser().is_absolute():
            return ""
        if data and self.data_dir is not None:
            return f" (relative to data_dir {str(self.path(self.data_dir))!r})"
        return f" (relative to the params file's folder {str(Path(self.base_dir).resolve())!r})"

    def sample_settings(self) -> SampleSettings:
        """What the synthetic sample of this profile is made of (it is a function of these alone)."""
        return SampleSettings(test_items=self.xnli.sample_items, corpus_sentences=self.sample.corpus_sentences,
                              parallel_sentences=self.sample.parallel_sentences,
                              anchor_share=tuple(sorted(self.sample.shares().items())))

    def subsampling_warnings(self) -> list[str]:
        """One line for each training set that a profile other than ``smoke`` subsamples without
        saying so: ``max_examples`` left out means a 2,000-example subsample. Writing the value out
        (``max_examples: 2000``, or ``null`` for every row) says it."""
        if self.profile == "smoke":
            return []
        implicit = []
        if "max_examples" not in self.mnli.model_fields_set:
            implicit.append("mnli.max_examples")
        for task in self.intermediate_conditions:
            settings = self.tasks.get(task)
            if settings is None or "max_examples" not in settings.model_fields_set:
                implicit.append(f"tasks.{task}.max_examples")
        return [f"{key} is not set: training uses a seeded subsample of {MnliConfig().max_examples:,} examples; "
                f"write {key.split('.')[-1]}: null for every row, or a number to keep a subsample"
                for key in implicit]

    def task_data(self, name: str) -> TaskDataConfig:
        """The data settings of task ``name`` (defaults when the params do not set them)."""
        return self.tasks.get(name, TaskDataConfig())

    def settings(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The settings that change results, flattened to dotted names
        (``training.mnli.learning_rate``), never the output location.

        ``keys`` limits them to some top-level fields or ``section.field`` paths (a stage's reads).
        Records keep these, so that a rerun can say which setting changed.
        """
        flat = flatten(self._resolved_dump())
        flat = {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_FINGERPRINTED)}
        if keys is not None:
            flat = {k: v for k, v in flat.items() if any(k == n or k.startswith(n + ".") for n in keys)}
        return flat

    def fingerprint(self, keys: tuple[str, ...] | None = None) -> str:
        """A short hash of :meth:`settings`: it changes when a setting that changes results does.

        ``keys`` limits it to some top-level fields or ``section.field`` paths, so that a stage's
        fingerprint changes only when a setting it reads changes.
        """
        return settings_hash(self.settings(keys))

    def _resolved_dump(self) -> dict:
        """The params with every path made absolute (data paths through ``data_dir``), so that the
        same settings give the same dump wherever the file that holds them lives."""
        data = self.model_dump()
        data["output_dir"] = str(self.path(self.output_dir))
        data["cache_dir"] = str(self.cache_root)
        for section, key in (("xnli", "path"), ("xnli", "labels_from"), ("mnli", "path")):
            if data[section][key]:
                data[section][key] = str(self.data_path(data[section][key]))
        for task in data["tasks"].values():
            if task["path"]:
                task["path"] = str(self.data_path(task["path"]))
        data["data_dir"] = None  # the data paths above are absolute now
        if self.distributed.accelerate_config:
            data["distributed"]["accelerate_config"] = str(self.path(self.distributed.accelerate_config))
        if looks_like_path(self.encoder.name) and self.path(self.encoder.name).exists():
            data["encoder"]["name"] = str(self.path(self.encoder.name))
        data.pop("base_dir")
        return data

    def to_yaml(self) -> str:
        """The resolved params as YAML, paths made absolute: it loads the same from any folder."""
        return yaml.safe_dump(self._resolved_dump(), sort_keys=False, allow_unicode=True)


def looks_like_path(name: str) -> bool:
    """True for encoder names that can only be folders (``./x``, ``/x``, ``~/x``, ``a/b/c``)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def _format_error(err: ValidationError, source: str) -> str:
    """Every error of ``err``, one line each (the first line alone when there is one)."""
    lines = list(dict.fromkeys(_format_one(e, source) for e in err.errors()))
    if len(lines) == 1:
        return lines[0]
    return f"{len(lines)} errors:\n" + "\n".join(lines)


def _format_one(first: dict, source: str) -> str:
    loc = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        model: type[BaseModel] = StudyConfig
        for part in first["loc"][:-1]:
            field = model.model_fields.get(str(part)) if isinstance(part, str) else None
            annotation = getattr(field, "annotation", None) if field else None
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation
            elif str(part) in ("tasks",) or not isinstance(part, str):
                model = TaskDataConfig
        allowed = ", ".join(f for f in model.model_fields if f != "base_dir")
        return f"{source}: unknown key '{loc}'; allowed here: {allowed}"
    if first["type"] == "missing":
        return f"{source}: missing required key '{loc}'"
    message = first["msg"].removeprefix("Value error, ")
    value = first.get("input")
    shown = f" (got {value!r})" if not isinstance(value, (dict, list)) else ""
    return f"{source}: '{loc}' {message}{shown}" if loc else f"{source}: {message}"


def parse_params(data: dict[str, Any], *, source: str = "params", base_dir: str | Path = ".") -> StudyConfig:
    """Validate a params mapping into a :class:`StudyConfig`; raise ``ParamsError`` on bad input."""
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: expected a mapping of keys to values at the top level")
    if "base_dir" in data:
        raise ParamsError(f"{source}: 'base_dir' is set by the loader, remove it from the file")
    try:
        return StudyConfig(**data, base_dir=str(Path(base_dir).resolve()))
    except ValidationError as err:
        raise ParamsError(_format_error(err, source)) from None


def parse_overrides(value: Any) -> list[str]:
    """Overrides as a list of ``KEY=VALUE`` strings, from a list, or from a string holding a YAML
    list or one ``KEY=VALUE`` (what ``papermill -p overrides '[...]'`` passes)."""
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        try:
            loaded = yaml.safe_load(value)
        except yaml.YAMLError:
            loaded = value
        value = loaded if isinstance(loaded, list) else [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ParamsError(f"overrides {value!r}: expected a list of KEY=VALUE strings, e.g. "
                          "['training.mnli.learning_rate=2e-5', 'seeds=[0,1,2]']")
    return list(value)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of the params mapping ``data`` with each ``KEY=VALUE`` of ``overrides`` set: dotted
    keys reach into nested sections (created when the file lacks them), values are parsed as YAML
    (``seeds=[0,1,2]``, ``device=cpu``, ``training.mnli.learning_rate=2e-5``). The result is
    validated as a file is, by :func:`parse_params`.

    >>> apply_overrides({"seeds": [0], "training": {"mnli": {"epochs": 2}}},
    ...                 ["seeds=[0,1]", "training.mnli.epochs=3"])
    {'seeds': [0, 1], 'training': {'mnli': {'epochs': 3}}}
    """
    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ParamsError(f"override {item!r}: expected KEY=VALUE with a dotted key and a YAML value, e.g. "
                              "training.mnli.learning_rate=2e-5 or seeds=[0,1,2]")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as err:
            raise ParamsError(f"override {item!r}: the value is not valid YAML ({getattr(err, 'problem', err)}); "
                              "quote it for the shell, e.g. --set 'seeds=[0,1,2]'") from None
        parts = key.split(".")
        node = out
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[:depth + 1])
                raise ParamsError(f"override {item!r}: '{where}' is a value ({child!r}), not a section with keys; "
                                  f"set it whole instead, e.g. {where}=...")
            node = child
        node[parts[-1]] = value
    return out


def load_params(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Read and validate a YAML profile, with ``overrides`` (``KEY=VALUE``, see
    :func:`apply_overrides`) set on it before validation. Relative paths in it resolve against
    its folder."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(
            f"params file {str(path)!r} not found; profiles live in params/ (e.g. params/smoke.yaml)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if data is None:
        raise ParamsError(f"{path}: the file is empty; a profile needs at least 'profile' and 'run_name' "
                          "(copy params/smoke.yaml to start from)")
    source = str(path)
    if overrides:
        if not isinstance(data, dict):
            raise ParamsError(f"{source}: expected a mapping of keys to values at the top level")
        data = apply_overrides(data, list(overrides))
        source = f"{path} with overrides {', '.join(overrides)}"
    return parse_params(data, source=source, base_dir=path.parent)
