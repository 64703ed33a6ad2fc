"""Names the study uses everywhere: the XNLI languages, the canonical NLI label space, and the
encoders (P, I[t], F[t])."""

from __future__ import annotations

#: The 15 XNLI languages, in the order of the XNLI paper's tables.
XNLI_LANGUAGES: tuple[str, ...] = (
    "en", "fr", "es", "de", "el", "bg", "ru", "tr", "ar", "vi", "th", "zh", "hi", "sw", "ur",
)

LANGUAGE_NAMES: dict[str, str] = {
    "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "fr": "French", "hi": "Hindi", "ru": "Russian", "sw": "Swahili",
    "th": "Thai", "tr": "Turkish", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}

#: The canonical label space. Ids follow the hub ``xnli`` / ``multi_nli`` convention.
NLI_LABELS: tuple[str, ...] = ("entailment", "neutral", "contradiction")
LABEL_TO_ID: dict[str, int] = {name: i for i, name in enumerate(NLI_LABELS)}


def encoder_label(stage: str, condition: str, seed: int | None = None) -> str:
    """How tables, figures and the report name an encoder: ``P`` (pretrained), ``I[task]``
    (intermediate) or ``F[condition]`` (final), with `` seed k`` when ``seed`` is given."""
    name = "P" if stage == "pretrained" else f"{stage[0].upper()}[{condition}]"
    return name if seed is None or stage == "pretrained" else f"{name} seed {seed}"
