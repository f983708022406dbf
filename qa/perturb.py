"""Unanswerable questions made from answerable ones, over the same paragraph (SQuAD 2.0's kinds, by rule).

SQuAD 2.0's unanswerable questions were written by changing an answerable question a little, so that its
paragraph still holds a plausible answer but no longer answers it (Rajpurkar et al. 2018: an entity or number
swapped, an antonym, a negation, ...). The reader's other negatives (another paragraph, a retrieved one) lack
a plausible answer altogether, so they do not teach it to read that closely. This module makes such
questions by rule, and only where the change cannot be answered by the paragraph:

- ``number``: a number of the question that the paragraph states becomes one it never states;
- ``entity``: a capitalized name of the question that the paragraph states becomes a name from other training
  questions that shares no word with the paragraph;
- ``antonym``: first/last, largest/smallest, before/after, ... where the paragraph never uses the new word;
- ``negation``: ``not`` between an auxiliary and its participle ("was founded" -> "was not founded"), where
  neither the paragraph nor the question has a negation.

Two more kinds, used only when asked for (``kinds``; the default four keep the negatives of runs made before
them exactly as they were):

- ``month``: a month of the question that the paragraph states becomes one it never states ("in March" ->
  "in February");
- ``opposite``: a wider lexicon of opposites than ``antonym``: verbs (supported/opposed, created/destroyed,
  praised/blamed), roles and kinship (husband/wife, teacher/student, king/queen), adjectives (legal/illegal,
  public/private), where the paragraph never uses the new word. Most of SQuAD 2.0's unanswerable questions
  made by a small edit change such a word;
- ``negation_local``: ``not`` as ``negation`` puts it, over a paragraph that may hold negations elsewhere but
  none within four words before any form of the negated verb (SQuAD 2.0's writers negated questions over
  such paragraphs most of the time);
- ``ordinal``: an ordinal of the question that the paragraph states ("20th") becomes one it never states;
- ``entity_local``: a capitalized name of the question that the paragraph states becomes another name *of the
  same paragraph* ("How much of Poland's income does Warsaw produce?" -> "... does Srodmiescie produce?"), one
  that no sentence holding a gold answer names, and whose own sentences share under half of the question's
  other content words (so that they do not answer the changed question either). ``entity`` brings in a name
  the paragraph never states, which a reader can learn to spot without reading; SQuAD 2.0's writers mostly
  swapped in names the paragraph does state;
- ``ordinal_word``: an ordinal word of the question that the paragraph states ("second") becomes a near one it
  never states ("third").
"""

from __future__ import annotations

import difflib
import functools
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from qa.chunking import sentence_spans
from qa.metrics import normalize_answer

PERTURBATIONS = ("number", "entity", "antonym", "negation", "month", "opposite", "negation_local", "ordinal",
                 "entity_local", "ordinal_word")
#: The kinds used unless others are asked for (the rules of reader v5's runs).
DEFAULT_KINDS = ("number", "entity", "antonym", "negation")
# How often each rule is tried first (weighted order): entity swaps apply to most questions, so they are tried
# first less often, to keep the kinds nearer SQuAD 2.0's mix.
PREFERENCE = {"number": 0.25, "entity": 0.2, "antonym": 0.35, "negation": 0.2, "month": 0.2, "opposite": 0.4,
              "negation_local": 0.3, "ordinal": 0.2, "entity_local": 0.3,
              "ordinal_word": 0.3}

_PAIRS = (
    ("first", "last"), ("largest", "smallest"), ("biggest", "smallest"), ("highest", "lowest"),
    ("earliest", "latest"), ("oldest", "youngest"), ("longest", "shortest"), ("most", "least"),
    ("before", "after"), ("maximum", "minimum"), ("north", "south"), ("east", "west"), ("northern", "southern"),
    ("eastern", "western"), ("increase", "decrease"), ("increased", "decreased"), ("more", "fewer"),
    ("won", "lost"), ("win", "lose"), ("higher", "lower"), ("larger", "smaller"), ("older", "younger"),
    ("best", "worst"), ("major", "minor"), ("top", "bottom"), ("inside", "outside"), ("began", "ended"),
    ("start", "end"), ("started", "ended"), ("rise", "fall"), ("positive", "negative"), ("strong", "weak"),
    ("ancient", "modern"), ("early", "late"), ("internal", "external"), ("upper", "lower"),
)
ANTONYMS = {**{a: b for a, b in _PAIRS}, **{b: a for a, b in _PAIRS}}
# The ``opposite`` kind's lexicon, one pair per line of related forms.
_OPPOSITE_PAIRS = (
    ("support", "oppose"), ("supported", "opposed"), ("supports", "opposes"), ("supporting", "opposing"),
    ("accept", "reject"), ("accepted", "rejected"), ("accepts", "rejects"), ("acceptance", "rejection"),
    ("allow", "prohibit"), ("allowed", "prohibited"), ("allows", "prohibits"), ("permitted", "forbidden"),
    ("create", "destroy"), ("created", "destroyed"), ("creates", "destroys"), ("creation", "destruction"),
    ("build", "demolish"), ("built", "demolished"), ("praise", "blame"), ("praised", "blamed"),
    ("gain", "loss"), ("gained", "lost"), ("gains", "losses"), ("profit", "deficit"), ("profits", "losses"),
    ("enter", "exit"), ("entered", "exited"), ("entrance", "exit"), ("opened", "closed"), ("opening", "closing"),
    ("import", "export"), ("imported", "exported"), ("imports", "exports"), ("importer", "exporter"),
    ("buy", "sell"), ("bought", "sold"), ("buys", "sells"), ("buyer", "seller"), ("buyers", "sellers"),
    ("purchased", "sold"), ("attack", "defend"), ("attacked", "defended"), ("attacking", "defending"),
    ("succeeded", "failed"), ("success", "failure"), ("successful", "unsuccessful"), ("agreed", "disagreed"),
    ("agree", "disagree"), ("include", "exclude"), ("included", "excluded"), ("includes", "excludes"),
    ("encourage", "discourage"), ("encouraged", "discouraged"), ("suppressed", "promoted"),
    ("approved", "vetoed"), ("remember", "forget"), ("remembered", "forgot"), ("love", "hate"),
    ("loved", "hated"), ("liked", "disliked"), ("arrived", "departed"), ("arrival", "departure"),
    ("appeared", "disappeared"), ("appear", "disappear"), ("added", "removed"), ("add", "remove"),
    ("captured", "released"), ("capture", "release"), ("hired", "fired"), ("connected", "disconnected"),
    ("victory", "defeat"), ("victories", "defeats"), ("defeated", "lost to"), ("birth", "death"),
    ("beginning", "end"), ("friend", "enemy"), ("friends", "enemies"), ("ally", "enemy"), ("allies", "enemies"),
    ("advantage", "disadvantage"), ("advantages", "disadvantages"), ("strengths", "weaknesses"),
    ("strength", "weakness"), ("input", "output"), ("inputs", "outputs"), ("supply", "demand"),
    ("cause", "effect"), ("causes", "effects"), ("majority", "minority"), ("predecessor", "successor"),
    ("ancestor", "descendant"), ("ancestors", "descendants"), ("winner", "loser"), ("winners", "losers"),
    ("teacher", "student"), ("teachers", "students"), ("employer", "employee"), ("employers", "employees"),
    ("husband", "wife"), ("father", "mother"), ("son", "daughter"), ("sons", "daughters"),
    ("brother", "sister"), ("brothers", "sisters"), ("king", "queen"), ("kings", "queens"),
    ("prince", "princess"), ("emperor", "empress"), ("uncle", "aunt"), ("nephew", "niece"),
    ("grandfather", "grandmother"), ("male", "female"), ("men", "women"), ("man", "woman"), ("boys", "girls"),
    ("boy", "girl"), ("summer", "winter"), ("spring", "autumn"), ("day", "night"), ("morning", "evening"),
    ("legal", "illegal"), ("public", "private"), ("domestic", "foreign"), ("rural", "urban"),
    ("military", "civilian"), ("rich", "poor"), ("wealthy", "poor"), ("richest", "poorest"),
    ("wealthiest", "poorest"), ("cheap", "expensive"), ("easy", "difficult"), ("simple", "complex"),
    ("common", "rare"), ("popular", "unpopular"), ("possible", "impossible"), ("necessary", "unnecessary"),
    ("able", "unable"), ("true", "false"), ("correct", "incorrect"), ("direct", "indirect"),
    ("official", "unofficial"), ("formal", "informal"), ("physical", "mental"), ("natural", "artificial"),
    ("hot", "cold"), ("warm", "cool"), ("wet", "dry"), ("fast", "slow"), ("faster", "slower"),
    ("fastest", "slowest"), ("stronger", "weaker"), ("strongest", "weakest"), ("hottest", "coldest"),
    ("deepest", "shallowest"), ("widest", "narrowest"), ("nearest", "farthest"), ("closest", "farthest"),
    ("heaviest", "lightest"), ("inner", "outer"), ("above", "below"), ("upstream", "downstream"),
    ("online", "offline"), ("ascending", "descending"), ("visible", "invisible"),
)
OPPOSITES: dict[str, str] = {}
for _a, _b in _OPPOSITE_PAIRS:
    OPPOSITES.setdefault(_a, _b)
    OPPOSITES.setdefault(_b, _a)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
_AUX = frozenset("is was are were did does do can could will would has have had should may might must".split())
_NEGATION = re.compile(r"\b(not|no|never|none|nor|neither|cannot|without)\b|n't\b", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d[\d,.]*")
_NUMBER = re.compile(r"\b\d[\d,]*(?:\.\d+)?\b")
# A capitalized name: capitalized words, possibly joined by "of", "the", "and", "de" ("University of Chicago").
_NAME = re.compile(r"\b[A-Z][\w'-]*(?:\s+(?:(?:of|the|and|de|von|van)\s+)*[A-Z][\w'-]*)*")
_NOT_NAMES = frozenset(
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday i".split())
# Participles after which "not" reads naturally ("was founded" -> "was not founded"), besides -ed/-en/-ing.
_PARTICIPLES = frozenset(
    "made built held sold found won led set put taught thought brought bought sent spent lost kept left paid "
    "known shown seen done given taken written born said told heard read run cut hit".split())


@dataclass(frozen=True, slots=True)
class Perturbed:
    """A question changed so that its paragraph no longer answers it, and how it was changed."""

    question: str
    kind: str  # one of PERTURBATIONS
    old: str  # the part of the question that was replaced (or the auxiliary that took a "not")
    new: str  # what replaced it


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple; ValueError naming the unknown ones (or none given) and listing the known."""
    unknown = [k for k in kinds if k not in PERTURBATIONS]
    if unknown or not kinds:
        raise ValueError(f"unknown perturbation kind(s) {', '.join(unknown) or '(none given)'}; the kinds are "
                         f"{', '.join(PERTURBATIONS)}")
    return tuple(kinds)


def _words(text: str) -> set[str]:
    return set(normalize_answer(text).split())


def _in(phrase: str, context_norm: str) -> bool:
    """True when the normalized phrase occurs in the normalized context as whole words."""
    p = normalize_answer(phrase)
    return bool(p) and f" {p} " in f" {context_norm} "


@dataclass(frozen=True)
class NamePool:
    """Capitalized names to swap into questions, by their number of words."""

    by_words: dict[int, tuple[str, ...]]

    def pick(self, n_words: int, rng: random.Random) -> str | None:
        """A name of ``n_words`` words (or of any length when there is none that long)."""
        names = self.by_words.get(n_words) or tuple(n for ns in self.by_words.values() for n in ns)
        return rng.choice(names) if names else None


def _name_spans(question: str) -> list[tuple[int, int]]:
    """Where the question's capitalized names are (its first word left out: it is capitalized anyway; a
    possessive 's left out too)."""
    spans = []
    for m in _NAME.finditer(question):
        a, b = m.start(), m.end()
        if not question[:a].strip():
            cut = re.match(r"\S+\s*", question[a:b])
            a += cut.end() if cut else 0
        if question[a:b].endswith("'s"):
            b -= 2
        text = question[a:b]
        if len(text) > 2 and text[:1].isupper() and text.lower() not in _NOT_NAMES and normalize_answer(text):
            spans.append((a, b))
    return spans


def names_of(texts: Iterable[str]) -> NamePool:
    """The capitalized names in ``texts`` (questions of the training articles), each once."""
    seen: dict[int, dict[str, None]] = {}
    for t in texts:
        t = t.strip()
        for a, b in _name_spans(t):
            seen.setdefault(len(t[a:b].split()), {})[t[a:b]] = None
    return NamePool({k: tuple(v) for k, v in sorted(seen.items())})


def _swap_number(question: str, ctx: str, rng: random.Random) -> Perturbed | None:
    found = [m for m in _NUMBER.finditer(question) if _in(m.group(), ctx)]
    if not found:
        return None
    m = rng.choice(found)
    digits = m.group().replace(",", "")
    try:
        value = float(digits)
    except ValueError:
        return None
    for _ in range(20):
        if value.is_integer() and 1000 <= value <= 2100:  # a year: another year near it
            new = str(int(value) + rng.choice([-1, 1]) * rng.randint(1, 30))
        elif value.is_integer():
            new = str(max(0, int(value) + rng.choice([-1, 1]) * rng.randint(1, max(2, int(value) // 2 + 1))))
        else:
            new = f"{value * rng.choice([0.5, 0.8, 1.25, 2.0]):.{len(digits.split('.')[1])}f}"
        if new != digits and not _in(new, ctx):
            return Perturbed(question[: m.start()] + new + question[m.end():], "number", m.group(), new)
    return None


def _stated_names(question: str, ctx: str) -> list[tuple[int, int]]:
    """Where the question's capitalized names are that the paragraph (normalized: ``ctx``) states too."""
    return [(a, b) for a, b in _name_spans(question) if _in(question[a:b], ctx)]


def _swap_entity(question: str, ctx: str, names: NamePool, rng: random.Random) -> Perturbed | None:
    found = _stated_names(question, ctx)
    if not found:
        return None
    a, b = rng.choice(found)
    old = question[a:b]
    ctx_words = set(ctx.split()) | _words(old)
    for _ in range(30):
        new = names.pick(len(old.split()), rng)
        if new is None:
            return None
        if not (_words(new) & ctx_words):
            return Perturbed(question[:a] + new + question[b:], "entity", old, new)
    return None


def _stated(phrase: str, ctx_words: set[str]) -> bool:
    """True when the paragraph has a form of each word of ``phrase`` (a word starting as it does: "opposed" for
    "oppose"; the stem is the word less its last two letters, at least four)."""
    return all(any(w.startswith(word[: max(4, len(word) - 2)]) for w in ctx_words) for word in phrase.split())


def _antonym(question: str, ctx_words: set[str], rng: random.Random, table: dict[str, str] = ANTONYMS,
             kind: str = "antonym", stated: Callable[[str, set[str]], bool] = lambda w, ws: w in ws,
             ) -> Perturbed | None:
    """A word of ``table`` in the question becomes its opposite, which the paragraph never uses: ``stated``
    tells whether it does (v5's ``antonym`` rule: the word itself; ``opposite``: any of its forms)."""
    found = [m for m in _WORD.finditer(question) if m.group().lower() in table
             and not stated(table[m.group().lower()], ctx_words)]
    if not found:
        return None
    m = rng.choice(found)
    new = table[m.group().lower()]
    if m.group()[0].isupper():
        new = new.capitalize()
    return Perturbed(question[: m.start()] + new + question[m.end():], kind, m.group(), new)


def _swap_month(question: str, ctx_words: set[str], rng: random.Random) -> Perturbed | None:
    """A month of the question (not its first word: "May" may be the modal) that the paragraph states becomes
    one that it never states."""
    found = [m for m in re.finditer(r"\b(?:" + "|".join(MONTHS) + r")\b", question)
             if question[: m.start()].strip() and m.group().lower() in ctx_words]
    if not found:
        return None
    m = rng.choice(found)
    others = [x for x in MONTHS if x.lower() not in ctx_words]
    if not others:
        return None
    new = rng.choice(others)
    return Perturbed(question[: m.start()] + new + question[m.end():], "month", m.group(), new)


def _negation(question: str, context: str, local: bool = False) -> Perturbed | None:
    """``not`` between an auxiliary and its participle ("was founded" -> "was not founded"), where the paragraph
    has no negation at all, or (``local``) none within four words before a form of that verb."""
    if _NEGATION.search(question) or (not local and _NEGATION.search(context)):
        return None
    words = list(_WORD.finditer(question))
    for aux, nxt in zip(words, words[1:], strict=False):
        verb = nxt.group().lower()
        if aux.group().lower() in _AUX and (verb in _PARTICIPLES or verb.endswith(("ed", "en", "ing"))):
            if local and _negated_in(verb, context):
                return None
            return Perturbed(question[: aux.end()] + " not" + question[aux.end():],
                             "negation_local" if local else "negation", aux.group(), aux.group() + " not")
    return None


def _negated_in(verb: str, context: str) -> bool:
    """True when a negation stands within four words before a word holding ``verb``'s stem ("reopened" for
    "opened") in ``context``."""
    stem = verb[: max(4, len(verb) - 3)]
    words = [m.group().lower() for m in re.finditer(r"[\w']+", context)]
    return any(stem in w and any(_NEGATION.fullmatch(x) or x.endswith("n't") for x in words[max(0, i - 4):i])
               for i, w in enumerate(words))


# Words that start a sentence capitalized without being a name ("The", "In 1920 ..."): left out of a name that
# a sentence starts with.
_SENTENCE_OPENERS = frozenset(
    "the a an in on at after before during although however while when since this that these those his her its "
    "their it he she they there as for from by with of to but and or if once until despite following between "
    "according many most some several other each both".split())
# Function words left out when the question's other words are compared with a sentence.
_FUNCTION = _SENTENCE_OPENERS | _AUX | frozenset(
    "what which who whom whose how why where not no did do does many much be been being".split())


@functools.lru_cache(maxsize=256)
def _sentences(context: str) -> tuple[str, ...]:
    """The paragraph's sentences (:func:`qa.chunking.sentence_spans`), kept for the paragraph's next questions."""
    return tuple(context[sp.start:sp.end] for sp in sentence_spans(context))


def _paragraph_names(sentences: Sequence[str]) -> list[str]:
    """The capitalized names of ``sentences``, each once. A sentence's opening word is capitalized anyway: it is
    left out of a name unless it stands capitalized within some sentence too ("Like the Speaker" -> "Speaker",
    but "Warsaw is ..." keeps "Warsaw" when another sentence names Warsaw)."""
    found: list[tuple[str, bool]] = []  # (name, at a sentence's start)
    inner: set[str] = set()  # words of names met within sentences
    for sent in sentences:
        for m in _NAME.finditer(sent):
            opening = not sent[: m.start()].strip()
            found.append((m.group(), opening))
            words = m.group().split()
            inner.update(words[1:] if opening else words)
    seen: dict[str, None] = {}
    for text, opening in found:
        words = text.split()
        if (opening and (words[0] not in inner or words[0].lower() in _SENTENCE_OPENERS)) or words[0] == "The":
            text = " ".join(words[1:])
        if text.endswith("'s"):
            text = text[:-2]
        if len(text) > 2 and text.lower() not in _NOT_NAMES and normalize_answer(text):
            seen.setdefault(text, None)
    return list(seen)


def _fold(text: str) -> str:
    """``text`` lower-cased with its accents dropped ("Thüringen" -> "thuringen")."""
    return unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()


def _near(name: str, question_stems: set[str], old: str) -> bool:
    """True when ``name`` may be the question's own name or word in another form, accents aside: a word of it
    starts as a word of the question does (``question_stems``: their first five letters, folded; "Canada" and
    "Canadian", "Thüringen" and "Thuringians"), or it is spelt nearly as ``old`` ("Vergil" for "Virgil")."""
    return (any(w[:5] in question_stems for w in _words(_fold(name)))
            or difflib.SequenceMatcher(None, _fold(name), _fold(old)).ratio() >= 0.75)


def _swap_entity_local(question: str, context: str, ctx: str, answers: Sequence[str], rng: random.Random,
                       ) -> Perturbed | None:
    """A name of the question that the paragraph states becomes another name of the paragraph: one that no
    sentence holding a gold answer names, and whose sentences share under half of the question's other
    content words."""
    found = _stated_names(question, ctx)
    if not found:
        return None
    sentences = _sentences(context)
    norm_sentences = [f" {normalize_answer(s)} " for s in sentences]
    gold = [g for g in map(normalize_answer, answers) if g]
    answer_sentences = [n for n in norm_sentences if any(f" {g} " in n for g in gold)]
    if not answer_sentences:
        return None
    a, b = rng.choice(found)
    old = question[a:b]
    others = _words(question[:a] + " " + question[b:]) - _FUNCTION
    stems = {w[:5] for w in _words(_fold(question))}
    candidates = []
    for name in _paragraph_names(sentences):
        norm = f" {normalize_answer(name)} "
        if _near(name, stems, old) or any(norm in n for n in answer_sentences):
            continue
        holding = [n for n in norm_sentences if norm in n]
        if others and all(len(others & set(n.split())) < len(others) / 2 for n in holding):
            candidates.append(name)
    if not candidates:
        return None
    same_length = [n for n in candidates if len(n.split()) == len(old.split())]
    new = rng.choice(same_length or candidates)
    return Perturbed(question[:a] + new + question[b:], "entity_local", old, new)


_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)


def _ordinal_suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _swap_ordinal(question: str, ctx: str, rng: random.Random) -> Perturbed | None:
    """An ordinal of the question that the paragraph states ("20th") becomes a near one it never states."""
    found = [m for m in _ORDINAL.finditer(question) if _in(m.group(), ctx)]
    if not found:
        return None
    m = rng.choice(found)
    value = int(m.group(1))
    for _ in range(20):
        n = max(1, value + rng.choice([-1, 1]) * rng.randint(1, 3))
        new = f"{n}{_ordinal_suffix(n)}"
        if n != value and not _in(new, ctx):
            return Perturbed(question[: m.start()] + new + question[m.end():], "ordinal", m.group(), new)
    return None


ORDINAL_WORDS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
                 "eleventh", "twelfth")


def _swap_ordinal_word(question: str, ctx_words: set[str], rng: random.Random) -> Perturbed | None:
    """An ordinal word of the question that the paragraph states ("second") becomes one of the two either side
    of it that the paragraph never states ("third")."""
    found = [m for m in _WORD.finditer(question)
             if m.group().lower() in ORDINAL_WORDS and m.group().lower() in ctx_words]
    if not found:
        return None
    m = rng.choice(found)
    i = ORDINAL_WORDS.index(m.group().lower())
    near = [w for w in ORDINAL_WORDS[max(0, i - 2): i + 3] if w != m.group().lower() and w not in ctx_words]
    if not near:
        return None
    new = rng.choice(near)
    if m.group()[0].isupper():
        new = new.capitalize()
    return Perturbed(question[: m.start()] + new + question[m.end():], "ordinal_word", m.group(), new)


def perturb_question(
    question: str, context: str, answers: Sequence[str], names: NamePool, rng: random.Random,
    kinds: Sequence[str] = DEFAULT_KINDS,
) -> Perturbed | None:
    """An unanswerable version of ``question`` over ``context``, or None when no rule applies safely.

    The rules are tried in a seeded random order (weighted by :data:`PREFERENCE`) and the first that applies is
    used. Each rule but ``entity_local`` only brings in words absent from the paragraph (so it cannot answer the
    changed question; ``entity_local`` brings in a name whose sentences do not answer it), and a change that
    would bring in one of ``answers`` (the gold answers) is skipped.

    Args:
        question: an answerable question.
        context: its paragraph.
        answers: its gold answers.
        names: capitalized names of other articles to swap in (:func:`names_of`).
        rng: the source of every choice.
        kinds: the rules to try (of :data:`PERTURBATIONS`).
    """
    check_kinds(kinds)
    ctx = normalize_answer(context)
    ctx_words = set(ctx.split())
    order = sorted(kinds, key=lambda k: -rng.random() ** (1 / PREFERENCE[k]))
    for kind in order:
        if kind == "number":
            p = _swap_number(question, ctx, rng)
        elif kind == "entity":
            p = _swap_entity(question, ctx, names, rng)
        elif kind == "antonym":
            p = _antonym(question, ctx_words, rng)
        elif kind == "negation":
            p = _negation(question, context)
        elif kind == "month":
            p = _swap_month(question, ctx_words, rng)
        elif kind == "negation_local":
            p = _negation(question, context, local=True)
        elif kind == "ordinal":
            p = _swap_ordinal(question, ctx, rng)
        elif kind == "entity_local":
            p = _swap_entity_local(question, context, ctx, answers, rng)
        elif kind == "ordinal_word":
            p = _swap_ordinal_word(question, ctx_words, rng)
        else:
            p = _antonym(question, ctx_words, rng, OPPOSITES, "opposite", _stated)
        if p is not None and not any(
                normalize_answer(a) and normalize_answer(a) in normalize_answer(p.new) for a in answers):
            return p
    return None
