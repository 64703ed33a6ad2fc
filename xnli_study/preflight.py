"""Params checks that need more than the params file: files on disk, the encoder, the device, the
hub. They run before any stage (``xnli-study check`` runs them too), so that bad input fails in
seconds with one line. Rules about the params alone (``source: local`` needs a ``path``) are
pydantic validators in :mod:`xnli_study.config`."""

from __future__ import annotations

import importlib.util
import os

from .alignment import headline_layer
from .config import TRACKERS, StudyConfig
from .errors import HubUnavailableError, ParamsError, StudyError
from .hub import hub_reachable, require_hub
from .launch import check_distributed
from .models import encoder_depth, pick_device, resolve_encoder_name
from .tasks import get_task, hub_fix


def data_files(config: StudyConfig) -> list[tuple[str, str, str]]:
    """``(params key, path as written, kind)`` of every local data file or folder the params name."""
    files = []
    if config.xnli.source in ("official", "xtreme"):
        files.append(("xnli.path", config.xnli.path, "folder"))
    if config.xnli.labels_from:
        files.append(("xnli.labels_from", config.xnli.labels_from, "file"))
    if config.mnli.source == "local":
        files.append(("mnli.path", config.mnli.path, "file"))
    for task in config.intermediate_conditions:
        if config.task_data(task).source == "local":
            files.append((f"tasks.{task}.path", config.task_data(task).path, get_task(task).local_kind))
    return files


def _file_problems(config: StudyConfig) -> list[str]:
    """One line for each local data file or folder the params name that does not exist, and for
    an output folder that cannot be one."""
    problems = []
    out = config.path(config.output_dir)
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if out.exists() and not out.is_dir():
        problems.append(f"output_dir: {str(out)!r} is a file, not a folder; name a folder for the run folders")
    elif existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        problems.append(f"output_dir: {str(out)!r} cannot be written ({str(existing)!r} is "
                        f"{'a file' if not existing.is_dir() else 'not writable'}); name a folder you can write")
    for key, value, kind in data_files(config):
        path = config.data_path(value)
        found = {"folder": path.is_dir(), "file": path.is_file(), "file or folder": path.exists()}[kind]
        if not found:
            problems.append(f"{key}: {kind} {str(path)!r} not found{config.relative_to(value)}")
    return problems


def _layer_problems(config: StudyConfig, name: str) -> list[str]:
    """One line for each layer the params name that the encoder does not have."""
    problems = []
    depth = encoder_depth(config, name)
    if depth is None:
        return problems
    for task in config.intermediate_conditions:
        chosen = config.task_data(task).layer
        if chosen is not None and chosen > depth:
            problems.append(f"tasks.{task}.layer: {chosen} is outside 0..{depth} (the encoder has "
                            f"{depth} layers; 0 is the embedding output)")
    layer, layers = config.alignment.headline_layer, config.alignment.layers
    if layer != "auto" and not 0 <= layer <= depth:
        problems.append(f"alignment.headline_layer: {layer} is outside 0..{depth} "
                        f"(the encoder has {depth} layers; 0 is the embedding output)")
    elif layers != "all":
        resolved = headline_layer(layer, depth)
        if resolved not in layers:
            problems.append(f"alignment.layers: {layers} leaves out the headline layer {resolved} "
                            f"(alignment.headline_layer: {layer}); add it or use layers: all")
    for stage in ("intermediate", "mnli"):
        frozen = getattr(config.training, stage).freeze_layers
        if frozen - 1 > depth:
            problems.append(f"training.{stage}.freeze_layers: {frozen} freezes layers 0..{frozen - 1}, but the "
                            f"encoder has layers 0..{depth} (0 is the embeddings); freeze at most {depth + 1}")
    frozen = config.training.intermediate.freeze_layers
    for task in config.intermediate_conditions:
        spec = get_task(task)
        if spec.is_alignment and 0 <= layer_of(config, spec, depth) < frozen:
            aligned = layer_of(config, spec, depth)
            problems.append(f"training.intermediate.freeze_layers: {frozen} freezes every layer up to "
                            f"tasks.{task}.layer ({aligned}): nothing would train; freeze at most {aligned}")
    return problems


def layer_of(config: StudyConfig, spec, depth: int) -> int:
    """The layer alignment task ``spec`` trains at, for an encoder of ``depth`` layers."""
    headline = config.alignment.headline_layer
    return spec.layer(config.task_data(spec.name), depth,
                      headline_layer(headline if headline == "auto" or headline <= depth else "auto", depth))


def _raise_first(problems: list[str]) -> None:
    if problems:
        raise ParamsError(problems[0])


def _hub_sources(config: StudyConfig) -> list[tuple[str, str, list[tuple[str, str | None]]]]:
    """``(what, fix, its hub datasets)`` for every data source the params take from the hub."""
    out = []
    if config.xnli.source == "hub":
        out.append((f"XNLI ({config.xnli.hub_id})", "Set xnli.source: official or xtreme with xnli.path.",
                    [(config.xnli.hub_id, None)]))
    if config.mnli.source == "hub":
        out.append((f"MultiNLI ({config.mnli.hub_id})", "Set mnli.source: local with mnli.path.",
                    [(config.mnli.hub_id, None)]))
    for task in config.intermediate_conditions:
        if config.task_data(task).source == "hub":
            spec = get_task(task)
            out.append((f"task {task!r} ({spec.hub_ids})", hub_fix(spec),
                        [(source.hub_id, source.revision) for source in spec.hub]))
    return out


def _check_hub_sources(config: StudyConfig) -> None:
    for what, fix, datasets in _hub_sources(config):
        require_hub(what, fix=fix, datasets=datasets)


def check_trackers(config: StudyConfig) -> None:
    """Every tracker ``training.report_to`` names is installed."""
    for name in config.training.report_to:
        module, package = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise ParamsError(f"training.report_to: {name} is not installed; pip install {package} (and configure "
                              f"it as {name} documents), or remove it from training.report_to")


def preflight(config: StudyConfig) -> None:
    """Every check that needs no training: files named in the params exist, the encoder resolves
    (folder, package, hub or cache), the headline layer exists, the device exists, and data
    sources on the hub can be reached. Raises the first problem."""
    _raise_first(_file_problems(config))
    name = resolve_encoder_name(config)
    pick_device(config.device)
    _raise_first(_layer_problems(config, name))
    _check_hub_sources(config)
    check_distributed(config)
    check_trackers(config)


def check_all(config: StudyConfig) -> list[str]:
    """The checks of :func:`preflight`, every one of them, for ``xnli-study check``: problems with
    the params or data raise one ``ParamsError`` listing them all; what this machine lacks for the
    run (the hub unreachable, the device absent) comes back as notes, so that a profile meant for
    another machine still passes its structural checks here."""
    errors: list[str] = []
    notes: list[str] = []
    hub: list[str] = []  # what must come from the hub, which is unreachable

    def attempt(check, *args):
        try:
            return check(*args)
        except HubUnavailableError:
            hub.append(f"encoder {config.encoder.name!r}")
        except ParamsError as err:
            if str(err).startswith("device:") or "is not installed" in str(err):
                notes.append(f"needs another machine: {err}")  # this one lacks a GPU or a package
            else:
                errors.append(str(err))
        except StudyError as err:
            errors.append(str(err))
        return None

    errors += _file_problems(config)
    name = attempt(resolve_encoder_name, config)
    attempt(pick_device, config.device)
    errors += attempt(_layer_problems, config, name or config.encoder.name) or []
    attempt(check_distributed, config)
    attempt(check_trackers, config)
    if _hub_sources(config) and not hub_reachable():
        hub += [what for what, _, _ in _hub_sources(config)]
    if hub:
        notes.insert(0, "the Hugging Face hub cannot be reached from here (offline?); the run downloads "
                        + "; ".join(hub) + ". Run on a machine online, or give local files (source: local "
                        "with path; encoder.name: a folder)")
    if errors:
        raise ParamsError(errors[0] if len(errors) == 1 else f"{len(errors)} errors:\n" + "\n".join(errors))
    return notes
