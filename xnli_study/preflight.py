"""Params checks that need more than the params file: files on disk, the encoder, the device, the
hub. They run before any stage (``xnli-study check`` runs them too), so that bad input fails in
seconds with one line. Rules about the params alone (``source: local`` needs a ``path``) are
pydantic validators in :mod:`xnli_study.config`."""

from __future__ import annotations

from .alignment import headline_layer
from .config import StudyConfig
from .errors import ParamsError
from .hub import require_hub
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


def _check_files(config: StudyConfig) -> None:
    for key, value, kind in data_files(config):
        path = config.data_path(value)
        found = {"folder": path.is_dir(), "file": path.is_file(), "file or folder": path.exists()}[kind]
        if not found:
            raise ParamsError(f"{key}: {kind} {str(path)!r} not found")


def _check_layers(config: StudyConfig, name: str) -> None:
    for task in config.intermediate_conditions:
        chosen = config.task_data(task).layer
        if chosen is not None:
            depth = encoder_depth(config, name)
            if depth is not None and chosen > depth:
                raise ParamsError(f"tasks.{task}.layer: {chosen} is outside 0..{depth} (the encoder has "
                                  f"{depth} layers; 0 is the embedding output)")
    layer, layers = config.alignment.headline_layer, config.alignment.layers
    if layer == "auto" and layers == "all":
        return
    depth = encoder_depth(config, name)
    if depth is None:
        return
    if layer != "auto" and not 0 <= layer <= depth:
        raise ParamsError(f"alignment.headline_layer: {layer} is outside 0..{depth} "
                          f"(the encoder has {depth} layers; 0 is the embedding output)")
    if layers != "all":
        resolved = headline_layer(layer, depth)
        if resolved not in layers:
            raise ParamsError(f"alignment.layers: {layers} leaves out the headline layer {resolved} "
                              f"(alignment.headline_layer: {layer}); add it or use layers: all")


def _check_hub_sources(config: StudyConfig) -> None:
    if config.xnli.source == "hub":
        require_hub(f"XNLI ({config.xnli.hub_id})", fix="Set xnli.source: official or xtreme with xnli.path.")
    if config.mnli.source == "hub":
        require_hub(f"MultiNLI ({config.mnli.hub_id})", fix="Set mnli.source: local with mnli.path.")
    for task in config.intermediate_conditions:
        if config.task_data(task).source == "hub":
            spec = get_task(task)
            require_hub(f"task {task!r} ({spec.hub_ids})", fix=hub_fix(spec))


def preflight(config: StudyConfig) -> None:
    """Every check that needs no training: files named in the params exist, the encoder resolves
    (folder, package, hub or cache), the headline layer exists, the device exists, and data
    sources on the hub can be reached."""
    _check_files(config)
    name = resolve_encoder_name(config)
    pick_device(config.device)
    _check_layers(config, name)
    _check_hub_sources(config)
