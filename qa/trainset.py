"""Training data for the reader: weighted SQuAD-format sources, mined "no answer" pairs, compact cached windows."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.chunking import sentence_spans
from qa.errors import TrainingDataError
from qa.metrics import normalize_answer
from qa.perturb import DEFAULT_KINDS, check_kinds, names_of, perturb_question
from qa.squad import SquadArticle, SquadQuestion, load_squad

log = logging.getLogger(__name__)

FEATURES_VERSION = 1  # bump when the features' layout or labelling changes, so old caches are not reused

# What each training example is; negatives are every kind but "answer".
KINDS = ("answer", "unanswerable", "synthetic", "paragraph", "retrieved", "perturbed")


@dataclass(frozen=True, slots=True)
class TrainSource:
    """A SQuAD-format training file and how many times each of its questions is used per epoch (in expectation)."""

    path: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError(f"weight of {self.path!r} must be a finite number >= 0, got {self.weight}")


def parse_source(spec: str) -> TrainSource:
    """``FILE`` or ``FILE:WEIGHT`` (weight a number >= 0: 2 uses each question twice, 0.5 a seeded half).

    Raises:
        TrainingDataError: the weight is not a number >= 0, or the file does not exist.
    """
    path, weight = spec, 1.0
    head, sep, tail = spec.rpartition(":")
    if sep and head and not Path(spec).exists():
        try:
            weight = float(tail)
        except ValueError:
            raise TrainingDataError(
                f"training file {spec!r}: the part after ':' must be a weight, got {tail!r}") from None
        path = head
        if not (weight >= 0 and math.isfinite(weight)):
            raise TrainingDataError(f"training file {path!r}: weight must be a number >= 0, got {tail!r}")
    if not Path(path).is_file():
        raise TrainingDataError(f"training file {path!r} not found")
    return TrainSource(path, weight)


@dataclass(frozen=True, slots=True)
class Example:
    """One (question, context) training pair; ``answer_start`` None means the context does not answer it."""

    context: str
    question: str
    answer_start: int | None
    answer_text: str
    kind: str = "answer"


@dataclass(frozen=True, slots=True)
class NegativeShares:
    """Shares of the answerable questions that are also trained as unanswerable, one per way of making them."""

    synthetic: float = 0.0  # over their paragraph with the sentence(s) holding the answer deleted
    paragraph: float = 0.0  # over another paragraph of their article that lacks the answer
    retrieved: float = 0.0  # over the best BM25 paragraph of another article that lacks the answer
    perturbed: float = 0.0  # changed by a rule of qa.perturb so that their own paragraph no longer answers them
    perturbed_kinds: tuple[str, ...] = DEFAULT_KINDS  # the rules of qa.perturb those may use

    def __post_init__(self) -> None:
        for name in ("synthetic", "paragraph", "retrieved", "perturbed"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} negatives share must be within [0, 1], got {v}")
        check_kinds(self.perturbed_kinds)


def load_sources(sources: Sequence[TrainSource]) -> list[list[SquadArticle]]:
    """Every source's articles, source by source."""
    return [load_squad(s.path) for s in sources]


def collect_examples(
    articles: Sequence[SquadArticle], held_out: set[str], *, keep: bool
) -> tuple[list[Example], list[tuple[str, list[SquadQuestion]]]]:
    """Training examples (keep=False drops the ``held_out`` titles) or dev paragraphs (keep=True keeps only them).

    The same (context, question) pair met twice (v1.1 and v2.0 share questions) is used once.
    """
    seen: set[tuple[str, str]] = set()
    examples: list[Example] = []
    paragraphs: dict[str, dict[str, SquadQuestion]] = {}
    for art in articles:
        if (art.title in held_out) != keep:
            continue
        for par in art.paragraphs:
            for q in par.questions:
                key = (par.context, q.question)
                if key in seen:
                    continue
                seen.add(key)
                paragraphs.setdefault(par.context, {})[q.qid] = q
                if q.is_impossible:
                    examples.append(Example(par.context, q.question, None, "", "unanswerable"))
                else:
                    examples.append(Example(par.context, q.question, q.answer_starts[0], q.answers[0]))
    return examples, [(ctx, list(qs.values())) for ctx, qs in paragraphs.items()]


def _lacks(context: str, answers: Sequence[str]) -> bool:
    """True when no normalized answer text occurs in the normalized context (a negative that cannot leak it)."""
    norm = normalize_answer(context)
    return all(a and a not in norm for a in (normalize_answer(x) for x in answers))


def synthetic_negative(context: str, answer_start: int, answer_text: str) -> str | None:
    """The paragraph without the sentence(s) that hold the answer, or None when that is no test.

    None when nothing would be left, or when the answer's words still occur in what is left (the
    question might still be answerable). Sentences come from :func:`qa.chunking.sentence_spans`;
    the kept ones are joined with single spaces.
    """
    a0, a1 = answer_start, answer_start + len(answer_text)
    kept = [context[sp.start : sp.end] for sp in sentence_spans(context) if sp.end <= a0 or sp.start >= a1]
    rest = " ".join(kept)
    if not kept or not normalize_answer(answer_text) or not _lacks(rest, [answer_text]):
        return None
    return rest


def _answers_by_pair(articles: Sequence[SquadArticle]) -> dict[tuple[str, str], tuple[str, ...]]:
    """Every gold answer of each (context, question): a negative must lack all of them, not only the first."""
    return {(p.context, q.question): q.answers for a in articles for p in a.paragraphs for q in p.questions}


def mine_negatives(
    articles: Sequence[SquadArticle],
    examples: Sequence[Example],
    shares: NegativeShares,
    seed: int,
    corpus: Sequence[tuple[str, str]] | None = None,
    key_prefix: str = "",
) -> list[Example]:
    """Unanswerable pairs made from a seeded sample of the answerable ``examples``, none holding the answer.

    Args:
        articles: the articles the examples came from (for same-article paragraphs and all gold answers).
        examples: the answerable examples to draw from (unanswerable ones are skipped).
        shares: how many of each kind to make.
        seed: seeds each kind's own sample, so changing one share leaves the others' pairs as they were.
        corpus: (article key, paragraph) pairs searched by BM25 for retrieved negatives; default: ``articles``.
        key_prefix: what the article keys of ``corpus`` put before the title (tells its own article from others).

    Returns:
        The new examples (``kind`` synthetic, paragraph, retrieved or perturbed). A question gets no pair of a
        kind when every candidate still contains one of its gold answers (normalized SQuAD-style), or, for
        perturbed, when no rule of :func:`qa.perturb.perturb_question` applies.
    """
    answers = _answers_by_pair(articles)
    title_of = {p.context: a.title for a in articles for p in a.paragraphs}
    if corpus is None:
        corpus = [(f"{key_prefix}{a.title}", p.context) for a in articles for p in a.paragraphs]
    paras_of: dict[str, list[str]] = {}
    for a in articles:
        paras_of.setdefault(a.title, []).extend(p.context for p in a.paragraphs)
    pool = [ex for ex in examples if ex.answer_start is not None]
    out: list[Example] = []

    def sample(kind: str, share: float) -> list[Example]:
        rng = random.Random(f"{seed}:{kind}")
        return [ex for ex in pool if rng.random() < share]

    for ex in sample("synthetic", shares.synthetic):
        rest = synthetic_negative(ex.context, ex.answer_start, ex.answer_text)
        gold = answers.get((ex.context, ex.question), (ex.answer_text,))
        if rest is not None and _lacks(rest, gold):
            out.append(Example(rest, ex.question, None, "", "synthetic"))

    rng = random.Random(f"{seed}:paragraph-choice")
    for ex in sample("paragraph", shares.paragraph):
        gold = answers.get((ex.context, ex.question), (ex.answer_text,))
        others = [c for c in paras_of.get(title_of.get(ex.context, ""), []) if c != ex.context]
        rng.shuffle(others)
        pick = next((c for c in others if _lacks(c, gold)), None)
        if pick is not None:
            out.append(Example(pick, ex.question, None, "", "paragraph"))

    chosen = sample("retrieved", shares.retrieved)
    if chosen:
        own = {c: f"{key_prefix}{t}" for c, t in title_of.items()}
        out.extend(_retrieved_negatives(chosen, answers, own, corpus))
    chosen = sample("perturbed", shares.perturbed)
    if chosen:
        out.extend(_perturbed_negatives(chosen, answers, pool, seed, shares.perturbed_kinds))
    counts = {k: sum(e.kind == k for e in out) for k in KINDS[2:]}
    log.info("mined negatives: %s", ", ".join(f"{n} {k}" for k, n in counts.items()))
    return out


def _perturbed_negatives(chosen, answers, pool, seed: int, kinds: Sequence[str]) -> list[Example]:
    """Per chosen question: itself changed so that its own paragraph no longer answers it (names to swap in
    come from the training questions only)."""
    names = names_of(ex.question for ex in pool)
    rng = random.Random(f"{seed}:perturbed-choice")
    out = []
    for ex in chosen:
        gold = answers.get((ex.context, ex.question), (ex.answer_text,))
        p = perturb_question(ex.question, ex.context, gold, names, rng, kinds)
        if p is not None:
            out.append(Example(ex.context, p.question, None, "", "perturbed"))
    return out


def _retrieved_negatives(chosen, answers, own_key, corpus, depth: int = 10) -> list[Example]:
    """Per chosen question: the best of its BM25 top ``depth`` paragraphs of another article lacking its answers."""
    import bm25s

    corpus = list(dict.fromkeys(corpus))  # a paragraph met twice is one candidate
    texts = [c for _, c in corpus]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    k = min(depth, len(texts))
    hits, _ = retriever.retrieve(
        bm25s.tokenize([ex.question for ex in chosen], stopwords="en", show_progress=False), k=k,
        show_progress=False, n_threads=1,
    )
    out = []
    for ex, row in zip(chosen, hits, strict=True):
        gold = answers.get((ex.context, ex.question), (ex.answer_text,))
        own = own_key.get(ex.context)
        for j in row.tolist():
            key, text = corpus[j]
            if key != own and _lacks(text, gold):
                out.append(Example(text, ex.question, None, "", "retrieved"))
                break
    return out


def apply_weight(examples: Sequence[Example], weight: float, seed: int) -> list[Example]:
    """``floor(weight)`` copies of each example plus one more for a seeded ``weight - floor(weight)`` share."""
    whole, frac = int(weight), weight - int(weight)
    rng = random.Random(f"{seed}:weight")
    out = []
    for ex in examples:
        out.extend([ex] * (whole + (1 if frac and rng.random() < frac else 0)))
    return out


@dataclass(frozen=True)
class Features:
    """Tokenized training windows in flat arrays (a few bytes a token, not Python lists).

    Window ``i`` is ``ids[offsets[i]:offsets[i+1]]``; its first ``n_first[i]`` tokens have token type 0
    (question and separators), the rest type 1; ``start``/``end`` are the answer's token positions (0, 0:
    no answer in this window); ``weight`` scales its loss.
    """

    ids: np.ndarray  # int32, all windows concatenated
    offsets: np.ndarray  # int64, n + 1
    n_first: np.ndarray  # int32
    start: np.ndarray  # int32
    end: np.ndarray  # int32
    weight: np.ndarray  # float32
    has_types: bool

    def __len__(self) -> int:
        return len(self.start)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def save(self, path: Path) -> None:
        """Write as one .npz, beside and swapped in (an interrupted save leaves no half file)."""
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, ids=self.ids, offsets=self.offsets, n_first=self.n_first, start=self.start, end=self.end,
                 weight=self.weight, has_types=np.array(self.has_types))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(path) as z:
            return cls(z["ids"], z["offsets"], z["n_first"], z["start"], z["end"], z["weight"],
                       bool(z["has_types"]))


def featurize(
    tokenizer,
    examples: Sequence[Example],
    max_length: int,
    stride: int,
    *,
    negative_weight: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 512,
) -> Features:
    """Tokenize into windows and label each with the answer's token span (0, 0 when the window lacks it).

    Windows of mined or real unanswerable examples get loss weight ``negative_weight``; the others 1.
    """
    ids: list[np.ndarray] = []
    n_first, starts, ends, weights = [], [], [], []
    has_types = True
    # The fast tokenizer panics when a question leaves no room for the stride: name the question instead.
    room = max_length - stride - tokenizer.num_special_tokens_to_add(pair=True)
    for b in range(0, len(examples), batch):
        chunk = examples[b : b + batch]
        for e, q_ids in zip(chunk, tokenizer([e.question for e in chunk], add_special_tokens=False)["input_ids"],
                            strict=True):
            if len(q_ids) >= room:
                raise TrainingDataError(
                    f"question {e.question[:80]!r} is {len(q_ids)} tokens: too long for windows of {max_length} "
                    f"tokens with a stride of {stride} (questions must be under {room} tokens)")
        enc = tokenizer(
            [e.question for e in chunk],
            [e.context for e in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=False,
        )
        has_types = has_types and "token_type_ids" in enc
        for i, ex_i in enumerate(enc["overflow_to_sample_mapping"]):
            ex = chunk[ex_i]
            seq_ids = enc.sequence_ids(i)
            offsets = enc["offset_mapping"][i]
            ctx = [t for t, s in enumerate(seq_ids) if s == 1]
            start_tok = end_tok = 0
            if ex.answer_start is not None:
                a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer_text)
                if ctx and offsets[ctx[0]][0] <= a0 and offsets[ctx[-1]][1] >= a1:
                    start_tok = next(t for t in ctx if offsets[t][1] > a0)
                    end_tok = next(t for t in reversed(ctx) if offsets[t][0] < a1)
            ids.append(np.asarray(enc["input_ids"][i], dtype=np.int32))
            types = enc["token_type_ids"][i] if "token_type_ids" in enc else None
            n_first.append(types.index(1) if types and 1 in types else len(enc["input_ids"][i]))
            starts.append(start_tok)
            ends.append(end_tok)
            weights.append(1.0 if ex.kind == "answer" else negative_weight)
        if progress is not None:
            progress(min(b + batch, len(examples)), len(examples))
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    return Features(
        ids=np.concatenate(ids) if ids else np.zeros(0, np.int32),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        n_first=np.array(n_first, np.int32),
        start=np.array(starts, np.int32),
        end=np.array(ends, np.int32),
        weight=np.array(weights, np.float32),
        has_types=has_types,
    )


def file_digest(path: str) -> str:
    """sha256 of a file's bytes: a cache of features built from it is reused only while it is unchanged."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """What training reads: the windows, and how many examples of each kind made them."""

    features: Features
    counts: dict[str, int]
    seconds: float  # to build (0 when read from the cache)
    cached: bool


def build_training_set(
    sources: Sequence[TrainSource],
    articles: Sequence[Sequence[SquadArticle]],
    held_out: set[str],
    tokenizer,
    *,
    max_length: int,
    stride: int,
    shares: NegativeShares,
    negative_weight: float,
    seed: int,
    cache_dir: Path | None = None,
    identity: dict | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TrainingSet:
    """Examples of every source (its negatives mined from its own questions), weighted, then featurized.

    With ``cache_dir``, the features are saved there under a name derived from ``identity`` (every setting
    they depend on, plus the files' digests), and read back by a later run with the same ones.

    Raises:
        TrainingDataError: no training question is left once the held-out titles are dropped.
    """
    key = None
    if cache_dir is not None:
        ident = {"version": FEATURES_VERSION, "files": [file_digest(s.path) for s in sources], **(identity or {})}
        key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
        path = cache_dir / f"features-{key}.npz"
        meta_path = cache_dir / f"features-{key}.json"
        if path.exists() and meta_path.exists():
            feats = Features.load(path)
            counts = json.loads(meta_path.read_text(encoding="utf-8"))["counts"]
            log.info("read %d cached training windows from %s", len(feats), path)
            return TrainingSet(feats, counts, 0.0, True)
    t0 = time.time()
    # Retrieved negatives come from every source's paragraphs, never from a held-out article's.
    corpus = [(f"{i}:{a.title}", p.context) for i, arts in enumerate(articles) for a in arts for p in a.paragraphs
              if a.title not in held_out]
    examples: list[Example] = []
    for i, (src, arts) in enumerate(zip(sources, articles, strict=True)):
        own, _ = collect_examples(arts, held_out, keep=False)
        negs = mine_negatives(arts, own, shares, seed + 7919 * i, corpus=corpus, key_prefix=f"{i}:")
        examples.extend(apply_weight(own + negs, src.weight, seed + 7919 * i))
    if not examples:
        raise TrainingDataError(
            f"no training questions in {', '.join(s.path for s in sources)}: every article is held out, "
            "has none, or has weight 0"
        )
    counts = {k: sum(e.kind == k for e in examples) for k in KINDS}
    log.info("%d training examples (%s); featurizing", len(examples), ", ".join(f"{n} {k}" for k, n in counts.items()))
    feats = featurize(tokenizer, examples, max_length, stride, negative_weight=negative_weight, progress=progress)
    seconds = time.time() - t0
    log.info("%d examples -> %d windows in %.0f s", len(examples), len(feats), seconds)
    if cache_dir is not None and key is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        feats.save(cache_dir / f"features-{key}.npz")
        (cache_dir / f"features-{key}.json").write_text(
            json.dumps({"counts": counts, "seconds": seconds, "windows": len(feats)}) + "\n", encoding="utf-8")
    return TrainingSet(feats, counts, seconds, False)

