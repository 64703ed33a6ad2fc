"""The synthetic sample shipped with the project (written by this module, never copied).

It lets the whole study run offline on a CPU in seconds. What it is, plainly:

* **English NLI pairs from templates.** A premise describes one event ("Anna bought a red apple in
  the kitchen in the morning."); each premise gets three hypotheses, one per label, like XNLI.
  Some labels follow from a cue word ("did not", "nobody"), others need the premise and hypothesis
  to be compared (a different place contradicts; a different time is neutral), so a model must
  learn something to pass and cannot reach 100 % from cue words alone.
* **Fourteen pseudo-languages keyed by the XNLI codes.** Each renders the same events with an
  invented vocabulary written in that language's script, with its word order (verb-final for hi,
  tr, ur), adjective position, articles or none, and no spaces for th and zh. Person names stay in
  Latin letters in every language, as shared anchors. These are *not* translations into real
  languages: numbers measured on the sample demonstrate the pipeline; they are not findings.
* **An English MNLI-style training set** (disjoint premises) and **an SST-2-style sentiment set**
  for the intermediate stage.

Files are written in the formats the real data comes in: the official XNLI-1.0 TSV
(``xnli.dev.tsv``, ``xnli.test.tsv``), MNLI JSONL ``{premise, hypothesis, label}`` and the GLUE
SST-2 TSV (``sentence \\t label``), so the sample goes through the same readers as real data.
"""

from __future__ import annotations

import csv
import json
import random
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

from .files import atomic_dir
from .languages import XNLI_LANGUAGES

NAMES = ("Anna", "Omar", "Lena", "Ravi", "Sofia", "Kenji", "Maria", "David", "Amir", "Mei",
         "Lucas", "Nadia")
VERBS = {"buy": ("bought", "buy"), "sell": ("sold", "sell"), "find": ("found", "find"),
         "lose": ("lost", "lose"), "clean": ("cleaned", "clean"), "carry": ("carried", "carry"),
         "paint": ("painted", "paint"), "repair": ("repaired", "repair")}
NOUNS = ("apple", "book", "car", "chair", "letter", "bicycle", "cake", "lamp", "shirt", "radio")
ADJECTIVES = ("red", "small", "old", "new", "heavy", "green", "broken", "cheap")
PLACES = ("kitchen", "garden", "market", "station", "office", "school", "park", "library")
TIMES = {"morning": "in the morning", "monday": "on Monday", "night": "at night",
         "lunch": "after lunch"}
REASONS = ("useful", "beautiful", "expensive")
FUNCTION_WORDS = ("not", "never", "someone", "nobody", "something", "nothing", "anything", "a",
                  "in", "for", "with", "because", "it_was")
SENTIMENT = {"wonderful": 1, "lovely": 1, "excellent": 1, "great": 1,
             "terrible": 0, "awful": 0, "boring": 0, "poor": 0}


@dataclass(frozen=True)
class Clause:
    """One event, the unit that every language renders. Lexeme keys, not surface words."""

    subject: str  # a name, "someone" or "nobody"
    verb: str  # a key of VERBS
    polarity: str = "pos"  # "pos", "not" (did not) or "never"
    noun: str | None = None  # None with a pronoun object
    adjective: str | None = None
    pronoun: str | None = None  # "something", "nothing" or "anything" instead of a noun phrase
    place: str | None = None
    time: str | None = None
    extra: tuple[str, str] | None = None  # ("for"|"with", name) or ("because", reason)


@dataclass(frozen=True)
class Style:
    """How a pseudo-language linearises a clause."""

    script: str
    verb_final: bool = False
    adjective_after: bool = False
    article: bool = True
    postpositions: bool = False
    spaces: bool = True
    stop: str = "."


STYLES: dict[str, Style] = {
    "fr": Style("latin-fr", adjective_after=True),
    "es": Style("latin-es", adjective_after=True),
    "de": Style("latin-de"),
    "el": Style("greek"),
    "bg": Style("cyrillic-bg", article=False),
    "ru": Style("cyrillic-ru", article=False),
    "tr": Style("latin-tr", verb_final=True, article=False, postpositions=True),
    "ar": Style("arabic", adjective_after=True),
    "vi": Style("latin-vi", adjective_after=True, article=False),
    "th": Style("thai", adjective_after=True, article=False, spaces=False),
    "zh": Style("han", article=False, spaces=False, stop="。"),
    "hi": Style("devanagari", verb_final=True, article=False, postpositions=True, stop="।"),
    "sw": Style("latin-sw", adjective_after=True, article=False),
    "ur": Style("arabic-ur", verb_final=True, article=False, postpositions=True, stop="۔"),
}

_INVENTORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "latin-fr": (tuple("bcdfglmnprstv") + ("ch",), ("a", "e", "i", "o", "u", "é", "è", "ou", "ai")),
    "latin-es": (tuple("bcdfglmnprstv") + ("ñ", "ll"), ("a", "e", "i", "o", "u", "á", "é", "ó")),
    "latin-de": (tuple("bdfghklmnprstwz") + ("sch",), ("a", "e", "i", "o", "u", "ä", "ö", "ü", "ei")),
    "latin-tr": (tuple("bcçdfgğhklmnprsştvyz"), ("a", "e", "ı", "i", "o", "ö", "u", "ü")),
    "latin-vi": (("b", "c", "d", "đ", "g", "h", "l", "m", "n", "ph", "s", "t", "th", "tr", "v", "x"),
                 ("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "à", "ạ", "ế", "ộ")),
    "latin-sw": (tuple("bdfghjklmnpstwy") + ("ng", "ch"), ("a", "e", "i", "o", "u")),
    "greek": (tuple("βγδζθκλμνξπρστφχ"), ("α", "ε", "η", "ι", "ο", "υ", "ω", "ά", "έ", "ό")),
    "cyrillic-ru": (tuple("бвгджзклмнпрстфхцчш"), ("а", "е", "и", "о", "у", "ы", "я", "ю")),
    "cyrillic-bg": (tuple("бвгджзклмнпрстфхцчшщ"), ("а", "е", "и", "о", "у", "ъ", "я", "ю")),
    "arabic": (tuple("بتثجحخدذرزسشصضطعغفقكلمنهوي"), ("ا", "و", "ي", "")),
    "arabic-ur": (tuple("بپتٹجچدڈرڑزسشکگلمنوہی"), ("ا", "و", "ی", "ے", "")),
    "devanagari": (tuple("कखगघचजटडतदनपबमयरलवसह"), ("ा", "ि", "ी", "ु", "ू", "े", "ो", "")),
    "thai": (tuple("กขคงจชดตทนบปพมยรลวสหอ"), ("า", "ิ", "ี", "ุ", "ู", "ั")),
}


def _word(rng: random.Random, script: str, syllables: int) -> str:
    if script == "han":  # one to two characters from the common CJK block
        return "".join(chr(rng.randint(0x4E00, 0x62FF)) for _ in range(syllables))
    consonants, vowels = _INVENTORIES[script]
    parts = [rng.choice(consonants) + rng.choice(vowels) for _ in range(syllables)]
    if script == "latin-vi":  # Vietnamese-like: monosyllables separated by spaces
        return " ".join(parts)
    if script.startswith("latin") or script in ("greek",) or script.startswith("cyrillic"):
        if rng.random() < 0.5:
            parts.append(rng.choice(consonants))
    return "".join(parts)


def lexicon(lang: str) -> dict[str, str]:
    """The invented vocabulary of pseudo-language ``lang``: lexeme key -> word (deterministic)."""
    if lang == "en":
        raise ValueError("English is rendered by english(), not from a lexicon")
    style = STYLES[lang]
    rng = random.Random(zlib.crc32(lang.encode()))
    keys = (list(FUNCTION_WORDS) + list(VERBS) + list(NOUNS) + list(ADJECTIVES) + list(PLACES)
            + list(TIMES) + list(REASONS))
    words: dict[str, str] = {}
    used: set[str] = set()
    for key in keys:
        syllables = 1 if key in FUNCTION_WORDS else rng.choice((2, 2, 3))
        if style.script == "han":
            syllables = 1 if key in FUNCTION_WORDS else 2
        word = _word(rng, style.script, syllables)
        while word in used:
            word = _word(rng, style.script, syllables + 1)
        used.add(word)
        words[key] = word
    return words


def english(clause: Clause) -> str:
    """Render a clause as an English sentence."""
    subject = {"someone": "Someone", "nobody": "Nobody"}.get(clause.subject, clause.subject)
    past, base = VERBS[clause.verb]
    verb = {"pos": past, "not": f"did not {base}", "never": f"never {past}"}[clause.polarity]
    if clause.pronoun:
        obj = clause.pronoun
    else:
        head = f"{clause.adjective} {clause.noun}" if clause.adjective else clause.noun
        obj = ("an " if head[0] in "aeiou" else "a ") + head
    words = [subject, verb, obj]
    if clause.place:
        words.append(f"in the {clause.place}")
    if clause.time:
        words.append(TIMES[clause.time])
    if clause.extra:
        kind, value = clause.extra
        words.append(f"because it was {value}" if kind == "because" else f"{kind} {value}")
    return " ".join(words) + "."


def render(clause: Clause, lang: str, words: dict[str, str] | None = None) -> str:
    """Render a clause in language ``lang`` (English, or one of the pseudo-languages)."""
    if lang == "en":
        return english(clause)
    style = STYLES[lang]
    lex = words or lexicon(lang)

    def word(key: str) -> str:
        return key if key in NAMES else lex[key]

    def adposition(head: str, phrase: str) -> list[str]:
        return [phrase, lex[head]] if style.postpositions else [lex[head], phrase]

    if clause.pronoun:
        obj = [lex[clause.pronoun]]
    else:
        obj = [lex[clause.noun]]
        if clause.adjective:
            obj = obj + [lex[clause.adjective]] if style.adjective_after else [lex[clause.adjective]] + obj
        if style.article:
            obj = [lex["a"]] + obj
    verb = [lex[clause.verb]]
    if clause.polarity != "pos":
        verb = [lex[clause.polarity]] + verb
    rest: list[str] = []
    if clause.place:
        rest += adposition("in", lex[clause.place])
    if clause.time:
        rest.append(lex[clause.time])
    tail: list[str] = []
    if clause.extra:
        kind, value = clause.extra
        if kind == "because":
            tail = [lex["because"], lex["it_was"], lex[value]]
        else:
            tail = adposition(kind, word(value))
    subject = [word(clause.subject)]
    order = subject + obj + rest + verb + tail if style.verb_final else subject + verb + obj + rest + tail
    text = (" " if style.spaces else "").join(order)
    if style.script.startswith(("latin", "greek", "cyrillic")):
        text = text[0].upper() + text[1:]
    return text + style.stop


# ---- NLI items -------------------------------------------------------------------------------
def _premise(rng: random.Random) -> Clause:
    return Clause(subject=rng.choice(NAMES), verb=rng.choice(list(VERBS)), noun=rng.choice(NOUNS),
                  adjective=rng.choice(ADJECTIVES), place=rng.choice(PLACES),
                  time=rng.choice(list(TIMES)))


def _hypotheses(p: Clause, rng: random.Random) -> dict[str, Clause]:
    other_name = rng.choice([n for n in NAMES if n != p.subject])
    other_place = rng.choice([x for x in PLACES if x != p.place])
    other_time = rng.choice([x for x in TIMES if x != p.time])
    short = Clause(subject=p.subject, verb=p.verb, noun=p.noun)
    entailment = [
        short,
        Clause(subject=p.subject, verb=p.verb, pronoun="something", place=p.place),
        Clause(subject="someone", verb=p.verb, noun=p.noun, adjective=p.adjective, time=p.time),
        replace(p, time=None),
    ]
    contradiction = [
        replace(short, polarity="not"),
        Clause(subject=p.subject, verb=p.verb, pronoun="nothing", place=p.place),
        Clause(subject="nobody", verb=p.verb, noun=p.noun, adjective=p.adjective, time=p.time),
        Clause(subject=p.subject, verb=p.verb, polarity="never", pronoun="anything"),
        replace(p, place=other_place),  # needs a comparison with the premise
    ]
    neutral = [
        replace(short, extra=("for", other_name)),
        replace(short, adjective=p.adjective, extra=("with", other_name)),
        replace(short, extra=("because", rng.choice(REASONS))),
        replace(p, time=other_time),  # needs a comparison with the premise
    ]
    return {"entailment": rng.choice(entailment), "neutral": rng.choice(neutral),
            "contradiction": rng.choice(contradiction)}


def nli_items(n_premises: int, *, seed: int, exclude: set[Clause] | None = None) -> list[dict]:
    """``3 * n_premises`` items ``{premise_id, premise, hypothesis, label}`` as Clauses.

    Premises are distinct and avoid ``exclude`` (so splits never share a premise).
    """
    rng = random.Random(seed)
    seen = set(exclude or ())
    items = []
    while len(items) < 3 * n_premises:
        p = _premise(rng)
        if p in seen:
            continue
        seen.add(p)
        hyps = _hypotheses(p, rng)
        labels = ["entailment", "neutral", "contradiction"]
        rng.shuffle(labels)
        for label in labels:
            items.append({"premise_id": len(seen), "premise": p, "hypothesis": hyps[label],
                          "label": label})
    return items


OFFICIAL_COLUMNS = ("language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
                    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "promptID",
                    "pairID", "genre", "label1", "label2", "label3", "label4", "label5",
                    "sentence1_tokenized", "sentence2_tokenized", "match")


def _write_official(path: Path, items: list[dict], *, first_pair_id: int) -> None:
    lexicons = {lang: lexicon(lang) for lang in XNLI_LANGUAGES if lang != "en"}
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
        writer.writerow(OFFICIAL_COLUMNS)
        for lang in sorted(XNLI_LANGUAGES):
            for i, item in enumerate(items):
                s1 = render(item["premise"], lang, lexicons.get(lang))
                s2 = render(item["hypothesis"], lang, lexicons.get(lang))
                label = item["label"]
                writer.writerow([lang, label, "", "", "", "", s1, s2, item["premise_id"],
                                 first_pair_id + i, "synthetic", label, label, label, label, label,
                                 s1, s2, "True"])


def xnli_folder(folder: str | Path) -> Path:
    """The sample's XNLI in the official XNLI-1.0 layout (``xnli.dev.tsv``, ``xnli.test.tsv``)."""
    return Path(folder) / "xnli"


def mnli_file(folder: str | Path) -> Path:
    """The sample's English MNLI-style training file (JSONL ``{premise, hypothesis, label}``)."""
    return Path(folder) / "mnli" / "train.jsonl"


def task_file(folder: str | Path, task: str) -> Path:
    """The sample's training file of an intermediate task (``sst2``: GLUE TSV)."""
    return Path(folder) / task / "train.tsv"


def is_written(folder: str | Path) -> bool:
    """True once :func:`write_sample` has completed in ``folder`` (the README is written with it)."""
    return (Path(folder) / "README.md").is_file()


def write_sample(folder: str | Path, *, test_items: int = 120, dev_items: int = 90,
                 mnli_examples: int = 1500, sst2_examples: int = 800, seed: int = 13) -> Path:
    """Write the whole sample into ``folder`` atomically and return it.

    Layout: ``xnli/xnli.{dev,test}.tsv`` (official XNLI-1.0 TSV, 15 languages, parallel),
    ``mnli/train.jsonl`` (English), ``sst2/train.tsv`` (GLUE layout) and ``README.md``.
    Item counts are rounded up to whole premises (three items per premise, labels balanced).
    """
    folder = Path(folder)
    test = nli_items(-(-test_items // 3), seed=seed)
    dev = nli_items(-(-dev_items // 3), seed=seed + 1, exclude={x["premise"] for x in test})
    held_out = {x["premise"] for x in test + dev}
    train = nli_items(-(-mnli_examples // 3), seed=seed + 2, exclude=held_out)
    with atomic_dir(folder) as tmp:
        xnli_folder(tmp).mkdir()
        _write_official(xnli_folder(tmp) / "xnli.test.tsv", test, first_pair_id=1)
        _write_official(xnli_folder(tmp) / "xnli.dev.tsv", dev, first_pair_id=1 + len(test))
        mnli_file(tmp).parent.mkdir()
        with mnli_file(tmp).open("w", encoding="utf-8") as f:
            for item in train[:mnli_examples]:
                f.write(json.dumps({"premise": english(item["premise"]),
                                    "hypothesis": english(item["hypothesis"]),
                                    "label": item["label"]}) + "\n")
        task_file(tmp, "sst2").parent.mkdir()
        with task_file(tmp, "sst2").open("w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for sentence, label in sentiment_items(sst2_examples, seed=seed + 3):
                f.write(f"{sentence}\t{label}\n")
        (tmp / "README.md").write_text(
            "# Synthetic sample written by xnli_study.sample\n\n" + (__doc__ or ""), encoding="utf-8"
        )
    return folder


def sentiment_items(n: int, *, seed: int) -> list[tuple[str, int]]:
    """SST-2-style sentences (lower-cased, tokenised like GLUE) with labels 1 positive, 0 negative."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        word, label = rng.choice(list(SENTIMENT.items()))
        negated = rng.random() < 0.25
        sentence = (f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} in the {rng.choice(PLACES)} "
                    f"was {'not ' if negated else ''}{word} .")
        rows.append((sentence, 1 - label if negated else label))
    return rows
