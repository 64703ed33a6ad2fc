"""Access to the Hugging Face hub that fails fast, with a fix, when the hub cannot be reached."""

from __future__ import annotations

import functools
import urllib.error
import urllib.request

from .errors import HubUnavailableError

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


def require_hub(what: str, *, fix: str) -> None:
    """Raise ``HubUnavailableError`` naming ``what`` and the ``fix`` when the hub is unreachable."""
    if not hub_reachable():
        raise HubUnavailableError(
            f"{what} must be downloaded from the Hugging Face hub, which cannot be reached "
            f"(offline?). {fix}"
        )
