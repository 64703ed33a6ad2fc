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
import math
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
    hour: int | None = None  # "at 9": digits are shared by every language (the corpora only)


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


#: every lexeme of the sample, in a fixed order
LEXEMES: tuple[str, ...] = (FUNCTION_WORDS + tuple(VERBS) + NOUNS + ADJECTIVES + PLACES + tuple(TIMES) + REASONS
                             + ("at",))
#: the English word a lexeme key stands for (an anchor is this very word in another language)
ENGLISH_WORDS: dict[str, str] = {
    **{key: key for key in LEXEMES}, **{verb: forms[0] for verb, forms in VERBS.items()},
    "it_was": "was", "monday": "Monday", "lunch": "lunch",
}
#: anchor shares by language group (sample.anchor_share): high for the Latin-script languages
#: most like English, low for the other scripts, in between for the rest
ANCHOR_GROUPS: dict[str, tuple[str, ...]] = {
    "high": ("fr", "es", "de"), "middle": ("tr", "vi", "sw"),
    "low": ("el", "bg", "ru", "ar", "th", "zh", "hi", "ur"),
}
DEFAULT_ANCHOR_SHARE: dict[str, float] = {
    **{lang: 0.5 for lang in ANCHOR_GROUPS["high"]}, **{lang: 0.3 for lang in ANCHOR_GROUPS["middle"]},
    "el": 0.1, "bg": 0.1, "ru": 0.1, **{lang: 0.05 for lang in ("ar", "th", "zh", "hi", "ur")},
}


def anchored_lexemes(lang: str, share: float) -> list[str]:
    """The lexemes that pseudo-language ``lang`` writes as the English word: ``share`` of the
    function words and ``share`` of the content words (rounded), each chosen by a fixed hash order
    (so a larger share keeps the smaller share's anchors). Taking the share of each word class
    alike keeps languages with one share comparable: none is left with no function-word anchor."""
    out = []
    for words in (FUNCTION_WORDS, tuple(k for k in LEXEMES if k not in FUNCTION_WORDS)):
        n = int(math.floor(share * len(words) + 0.5))
        out += sorted(words, key=lambda key: zlib.crc32(f"{lang}:{key}".encode()))[:n]
    return sorted(out)


def lexicon(lang: str, anchor_share: float = 0.0) -> dict[str, str]:
    """The vocabulary of pseudo-language ``lang``: lexeme key -> word (deterministic). A share
    ``anchor_share`` of the lexemes are anchors, the English word itself; the rest are invented
    words in the language's script. Person names and digits are shared by every language."""
    if lang == "en":
        raise ValueError("English is rendered by english(), not from a lexicon")
    style = STYLES[lang]
    rng = random.Random(zlib.crc32(lang.encode()))
    keys = list(LEXEMES)
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
    for key in anchored_lexemes(lang, anchor_share):
        words[key] = ENGLISH_WORDS[key]
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
    if clause.hour is not None:
        words.append(f"at {clause.hour}")
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
    if clause.hour is not None:
        rest += adposition("at", str(clause.hour))
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


def _write_official(path: Path, items: list[dict], *, first_pair_id: int,
                    words: dict[str, dict[str, str]]) -> None:
    lexicons = words
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


@dataclass(frozen=True)
class SampleSettings:
    """Everything that decides the sample's content (the sample is a function of these alone)."""

    test_items: int = 120
    dev_items: int = 90
    mnli_examples: int = 1500
    sst2_examples: int = 800
    corpus_sentences: int = 600  # monolingual sentences per language (masked-LM pretraining)
    parallel_sentences: int = 300  # parallel events rendered in every language
    anchor_share: tuple[tuple[str, float], ...] = tuple(sorted(DEFAULT_ANCHOR_SHARE.items()))
    seed: int = 13

    @property
    def shares(self) -> dict[str, float]:
        return dict(self.anchor_share)

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "anchor_share"},
                "anchor_share": self.shares, "version": SAMPLE_VERSION}


#: bump when the generator changes: a sample written by another version is written again
SAMPLE_VERSION = 3


def lexicons(settings: SampleSettings) -> dict[str, dict[str, str]]:
    return {lang: lexicon(lang, settings.shares.get(lang, 0.0)) for lang in XNLI_LANGUAGES if lang != "en"}


def _all_clauses(items: list[dict]) -> set[Clause]:
    return {x["premise"] for x in items} | {x["hypothesis"] for x in items}


def _corpus_clause(rng: random.Random) -> Clause:
    """An event for the corpora: a premise, or one of its shorter forms, sometimes with an hour."""
    p = _premise(rng)
    form = rng.random()
    if form < 0.35:
        p = replace(p, time=None, place=rng.choice((p.place, None)))
    elif form < 0.5:
        p = replace(p, adjective=None)
    if rng.random() < 0.3:
        p = replace(p, hour=rng.randint(1, 12))
    if rng.random() < 0.15:
        p = replace(p, polarity=rng.choice(("not", "never")))
    return p


def corpus(settings: SampleSettings, *, exclude: set[Clause]) -> dict[str, list[str]]:
    """Monolingual text for masked-LM pretraining: ``corpus_sentences`` sentences per language, each
    language drawing its own events (not parallel), none of them an XNLI item (``exclude``)."""
    words = lexicons(settings)
    out = {}
    for lang in XNLI_LANGUAGES:
        rng = random.Random(zlib.crc32(f"corpus:{settings.seed}:{lang}".encode()))
        sentences = []
        while len(sentences) < settings.corpus_sentences:
            clause = _corpus_clause(rng)
            if clause not in exclude:
                sentences.append(render(clause, lang, words.get(lang)))
        out[lang] = sentences
    return out


def parallel_events(settings: SampleSettings, *, exclude: set[Clause]) -> list[dict]:
    """Events for the parallel corpus, none of them a clause of the XNLI or MNLI sample
    (``exclude``): each a premise with one hypothesis and its label."""
    rng = random.Random(settings.seed + 5)
    events, seen = [], set(exclude)
    while len(events) < settings.parallel_sentences:
        clause = _corpus_clause(rng)
        hyps = _hypotheses(clause, rng)
        label = rng.choice(list(hyps))
        if clause in seen or hyps[label] in exclude:
            continue
        seen.add(clause)
        events.append({"premise": clause, "hypothesis": hyps[label], "label": label})
    return events


def corpus_file(folder: str | Path, lang: str) -> Path:
    """One language's monolingual corpus: one sentence per line."""
    return Path(folder) / "corpus" / f"{lang}.txt"


def parallel_folder(folder: str | Path) -> Path:
    """The parallel corpus in the XNLI-1.0-MT layout: ``multinli.train.<lang>.tsv`` per language,
    rows parallel across languages (header ``premise hypo label``)."""
    return Path(folder) / "parallel"


def lexicon_folder(folder: str | Path) -> Path:
    """The bilingual lexicons, one file per language (:func:`lexicon_file`)."""
    return Path(folder) / "lexicons"


def lexicon_file(folder: str | Path, lang: str) -> Path:
    """The bilingual lexicon English -> ``lang`` in the MUSE format (``source target`` per line)."""
    return lexicon_folder(folder) / f"en-{lang}.txt"


def settings_file(folder: str | Path) -> Path:
    return Path(folder) / "settings.json"


def is_written(folder: str | Path, settings: SampleSettings | None = None) -> bool:
    """True once :func:`write_sample` has completed in ``folder`` (with ``settings``, when given)."""
    path = settings_file(folder)
    if not path.is_file():
        return False
    return settings is None or json.loads(path.read_text(encoding="utf-8")) == settings.as_dict()


def held_out_clauses(settings: SampleSettings) -> set[Clause]:
    """Every clause of the XNLI sample (test and dev) and of the MNLI sample."""
    test, dev, train = _nli_splits(settings)
    return _all_clauses(test) | _all_clauses(dev) | _all_clauses(train)


def _nli_splits(settings: SampleSettings):
    test = nli_items(-(-settings.test_items // 3), seed=settings.seed)
    dev = nli_items(-(-settings.dev_items // 3), seed=settings.seed + 1, exclude={x["premise"] for x in test})
    held_out = {x["premise"] for x in test + dev}
    train = nli_items(-(-settings.mnli_examples // 3), seed=settings.seed + 2, exclude=held_out)
    return test, dev, train[:settings.mnli_examples]


def english_training_text(settings: SampleSettings) -> list[str]:
    """The English sentences of the sample's MNLI and SST-2 training sets."""
    _, _, train = _nli_splits(settings)
    text = [english(x[part]) for x in train for part in ("premise", "hypothesis")]
    return text + [sentence for sentence, _ in sentiment_items(settings.sst2_examples, seed=settings.seed + 3)]


def write_sample(folder: str | Path, settings: SampleSettings | None = None, **overrides) -> Path:
    """Write the whole sample into ``folder`` atomically and return it.

    Layout: ``xnli/xnli.{dev,test}.tsv`` (official XNLI-1.0 TSV, 15 languages, parallel),
    ``mnli/train.jsonl`` (English), ``sst2/train.tsv`` (GLUE layout), ``corpus/<lang>.txt``
    (monolingual, for pretraining), ``parallel/multinli.train.<lang>.tsv`` (parallel events in
    the XNLI-1.0-MT layout), ``lexicons/en-<lang>.txt`` (MUSE format), ``settings.json`` and
    ``README.md``. Item counts are rounded up to whole premises (three items per premise, labels
    balanced). ``overrides`` are fields of :class:`SampleSettings`.
    """
    settings = replace(settings or SampleSettings(), **overrides)
    folder = Path(folder)
    test, dev, train = _nli_splits(settings)
    words = lexicons(settings)
    xnli_clauses = _all_clauses(test) | _all_clauses(dev)
    with atomic_dir(folder) as tmp:
        xnli_folder(tmp).mkdir()
        _write_official(xnli_folder(tmp) / "xnli.test.tsv", test, first_pair_id=1, words=words)
        _write_official(xnli_folder(tmp) / "xnli.dev.tsv", dev, first_pair_id=1 + len(test), words=words)
        mnli_file(tmp).parent.mkdir()
        with mnli_file(tmp).open("w", encoding="utf-8") as f:
            for item in train:
                f.write(json.dumps({"premise": english(item["premise"]),
                                    "hypothesis": english(item["hypothesis"]),
                                    "label": item["label"]}) + "\n")
        task_file(tmp, "sst2").parent.mkdir()
        with task_file(tmp, "sst2").open("w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for sentence, label in sentiment_items(settings.sst2_examples, seed=settings.seed + 3):
                f.write(f"{sentence}\t{label}\n")
        for lang, sentences in corpus(settings, exclude=xnli_clauses).items():
            corpus_file(tmp, lang).parent.mkdir(exist_ok=True)
            corpus_file(tmp, lang).write_text("\n".join(sentences) + "\n", encoding="utf-8")
        events = parallel_events(settings, exclude=xnli_clauses | _all_clauses(train))
        parallel_folder(tmp).mkdir()
        for lang in XNLI_LANGUAGES:
            with (parallel_folder(tmp) / f"multinli.train.{lang}.tsv").open("w", encoding="utf-8") as f:
                f.write("premise\thypo\tlabel\n")
                for e in events:
                    label = "contradictory" if e["label"] == "contradiction" else e["label"]
                    f.write(f"{render(e['premise'], lang, words.get(lang))}\t"
                            f"{render(e['hypothesis'], lang, words.get(lang))}\t{label}\n")
        for lang, lex in words.items():
            lexicon_file(tmp, lang).parent.mkdir(exist_ok=True)
            pairs = sorted({(ENGLISH_WORDS[key], lex[key]) for key in LEXEMES})
            lexicon_file(tmp, lang).write_text("".join(f"{en} {word}\n" for en, word in pairs
                                                       if " " not in word), encoding="utf-8")
        (tmp / "README.md").write_text(_readme(settings), encoding="utf-8")
        settings_file(tmp).write_text(json.dumps(settings.as_dict(), indent=1), encoding="utf-8")
    return folder


def _readme(settings: SampleSettings) -> str:
    shares = "\n".join(f"| {lang} | {share:.2f} | {group} |" for group, langs in ANCHOR_GROUPS.items()
                       for lang in langs for share in [settings.shares.get(lang, 0.0)])
    return ("# Synthetic sample written by xnli_study.sample\n\n" + (__doc__ or "")
            + "\n## Anchor shares\n\nThe share of the vocabulary each pseudo-language writes as the English "
              "word (person names and digits are shared by every language besides):\n\n"
              "| language | anchor share | group |\n|---|---|---|\n" + shares + "\n")


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
