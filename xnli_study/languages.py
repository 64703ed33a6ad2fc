"""The XNLI languages and the canonical NLI label space."""

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
