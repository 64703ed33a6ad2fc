"""What a run read, for a paper's methods section: the SHA-256 of every local data file and the
revision (commit) of every hub model and dataset, recorded in the run's manifest.

Hub revisions are read from the local Hugging Face cache (the snapshot a run loaded), so they are
known offline and cost no request; a repository not in the cache yet is recorded as such, and
the manifest is written again after each stage, once the run has downloaded it.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from .config import StudyConfig, looks_like_path, settings_hash
from .hub import cached_revision
from .models import tiny_key
from .preflight import data_files
from .tasks import get_task

#: read files in blocks of this many bytes
_BLOCK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """The file's SHA-256, computed once per process for each version of the file (its inode,
    size, and modification and change times)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


@functools.lru_cache(maxsize=4096)
def _sha256(path: str, inode: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def hash_tree(path: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of a file (its own name) or of every file under a folder."""
    path = Path(path)
    if path.is_file():
        return {path.name: sha256_file(path)}
    return {str(f.relative_to(path)): sha256_file(f) for f in sorted(path.rglob("*"))
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)}


def local_data(config: StudyConfig) -> dict[str, dict]:
    """Every local data file or folder the params name: its path and the SHA-256 of each file."""
    out = {}
    for key, value, _kind in data_files(config):
        path = config.data_path(value)
        out[key] = {"path": str(path), "sha256": hash_tree(path) if path.exists() else "missing"}
    if looks_like_path(config.encoder.name) or config.path(config.encoder.name).is_dir():
        folder = config.path(config.encoder.name)
        if folder.is_dir():
            out["encoder.name"] = {"path": str(folder), "sha256": hash_tree(folder)}
    return out


def input_digests(config: StudyConfig) -> dict[str, str]:
    """A digest of what each input the params name holds, by the params key naming it: every local
    data file or folder and a local encoder folder (their content), the pretrained tiny P (its
    content key) or a hub encoder (its commit in the local cache, once downloaded). Stages and
    units that read an input run again when it changes, though no setting did."""
    out = {key: settings_hash(entry["sha256"]) for key, entry in local_data(config).items()}
    if config.encoder.name == "tiny":
        out["encoder.tiny"] = tiny_key(config)
    else:
        for repo_type, repo_id, revision in hub_repos(config):
            if repo_type == "model":
                commit = cached_revision(repo_type, repo_id, revision)
                if commit:
                    out["encoder.name"] = commit
    return out


def hub_repos(config: StudyConfig) -> list[tuple[str, str, str | None]]:
    """``(repo type, repo id, requested revision)`` of every hub repository the run reads."""
    repos: list[tuple[str, str, str | None]] = []
    name = config.encoder.name
    if name != "tiny" and not name.startswith("package:") and not looks_like_path(name) \
            and not config.path(name).is_dir():
        repos.append(("model", name, config.encoder.revision))
    if config.xnli.source == "hub":
        repos.append(("dataset", config.xnli.hub_id, None))
    if config.mnli.source == "hub":
        repos.append(("dataset", config.mnli.hub_id, None))
    for task in config.intermediate_conditions:
        if config.task_data(task).source == "hub":
            for source in get_task(task).hub:
                repos.append(("dataset", source.hub_id, source.revision))
    return list(dict.fromkeys(repos))


def hub_revisions(config: StudyConfig, *, cache_dir: str | Path | None = None) -> dict[str, dict]:
    """``{repo id: {type, requested, commit}}`` for every hub repository of the run; ``commit`` is
    ``"not downloaded yet"`` until the run has fetched it."""
    out = {}
    for repo_type, repo_id, revision in hub_repos(config):
        commit = cached_revision(repo_type, repo_id, revision, cache_dir=cache_dir)
        key = repo_id if revision is None else f"{repo_id}@{revision}"
        out[key] = {"type": repo_type, "requested": revision or "main", "commit": commit or "not downloaded yet"}
    return out
