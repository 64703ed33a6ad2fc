"""Access to the Hugging Face hub that fails fast, with a fix, when the hub cannot be reached."""

from __future__ import annotations

import functools
import logging
import urllib.error
import urllib.request
from pathlib import Path

from .errors import HubUnavailableError

log = logging.getLogger("xnli_study")

#: seconds to wait for the hub before declaring it unreachable
PROBE_TIMEOUT_S = 5.0


@functools.lru_cache(maxsize=None)
def hub_reachable(endpoint: str | None = None) -> bool:
    """True when the hub answers within ``PROBE_TIMEOUT_S`` (the answer is cached per process).

    Honours ``HF_HUB_OFFLINE`` as read by ``huggingface_hub`` itself.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = (endpoint or constants.ENDPOINT).rstrip("/") + "/api/models?limit=1"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_TIMEOUT_S)
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


def require_hub(what: str, *, fix: str, datasets: list[tuple[str, str | None]] = ()) -> None:
    """Raise ``HubUnavailableError`` naming ``what`` and the ``fix`` when the hub is unreachable,
    unless every one of ``datasets`` (``(repo id, revision)``) is in the local hub cache (fetched
    by ``xnli-study prefetch``): then the run reads the cached copies."""
    if not hub_reachable():
        if datasets and all(cached_revision("dataset", repo, rev) for repo, rev in datasets):
            log.info("the hub cannot be reached; reading the cached copy of %s", what)
            return
        raise HubUnavailableError(
            f"{what} must be downloaded from the Hugging Face hub, which cannot be reached "
            f"(offline?). {fix}"
        )


def cached_revision(repo_type: str, repo_id: str, revision: str | None = None, *,
                    cache_dir: str | Path | None = None) -> str | None:
    """The commit of ``repo_id`` in the local hub cache: the snapshot that ``revision`` (default
    ``main``) points at, or a snapshot named by that commit; with no revision asked for and no
    ``main`` ref (``datasets`` downloads at a resolved commit and writes none), the newest
    snapshot. None when the repository, or the revision asked for, is not cached."""
    from huggingface_hub import constants

    folder = Path(cache_dir or constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    if not folder.is_dir():
        return None
    ref = folder / "refs" / (revision or "main")
    if ref.is_file():
        return ref.read_text().strip()
    snapshots = folder / "snapshots"
    if revision:
        return revision if (snapshots / revision).is_dir() else None
    found = sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime) if snapshots.is_dir() else []
    return found[-1].name if found else None
