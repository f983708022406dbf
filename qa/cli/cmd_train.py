"""`qa train-reader`: train an extractive reader on SQuAD-format files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qa.cli import common
from qa.cli.common import (
    app,
    print_json,
    run_or_exit,
)


@app.command("train-reader", short_help="Train an extractive reader on SQuAD-format files (the shipped recipe).")
def train_reader(
    train: Annotated[list[str], typer.Argument(
        metavar="FILE[:WEIGHT]", help="SQuAD v1.1/v2.0 JSON files to train on. FILE:WEIGHT mixes them: each "
        "question of FILE (and the negatives mined from it) is used WEIGHT times per epoch in expectation "
        "(2 doubles it, 0.5 keeps a seeded half; default 1).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the trained model.")],
    base_model: Annotated[str | None, typer.Option(help="Encoder to start from. [default: all-MiniLM-L6-v2]")] = None,
    dev_article: Annotated[list[str] | None, typer.Option(
        "--dev-article", help="Title of an article held out and scored at the end (repeat).")] = None,
    max_length: Annotated[int, typer.Option(help="Tokens per window (question + passage).")] = 256,
    doc_stride: Annotated[int, typer.Option(help="Overlap of windows over a long paragraph.")] = 128,
    epochs: Annotated[float, typer.Option(help="Passes over the training windows.")] = 5.0,
    batch_size: Annotated[int, typer.Option()] = 32,
    learning_rate: Annotated[float, typer.Option(help="Peak AdamW learning rate (10% warm-up, linear decay).")]
    = 1e-4,
    seed: Annotated[int, typer.Option()] = 13,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    precision: Annotated[str, typer.Option(
        help="fp32, or bf16: bfloat16 autocast over float32 weights, faster on CPUs with bfloat16 instructions "
        "(AMX, AVX-512 BF16: 1.3x on a 2-core Xeon with AMX) and on GPUs; part of a run's identity (--resume "
        "keeps it).")] = "fp32",
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    save_every: Annotated[int, typer.Option(help="Steps between resumable checkpoints (0: none).")] = 100,
    resume: Annotated[bool, typer.Option(
        help="Continue from OUTPUT/checkpoint if present: the same settings give the same weights as a run never "
        "interrupted (the device and --threads may change).")] = False,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for torch. [default: every core]")] = None,
    log_file: Annotated[Path | None, typer.Option(
        "--log", dir_okay=False, help="Append progress lines (step, loss, seconds a step, time left, checkpoints) "
        "to this file: the record of a run in the background or across sessions.")] = None,
    synthetic_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of answerable questions also trained as unanswerable, over their paragraph "
        "with the answer's sentence(s) deleted.")] = 0.0,
    paragraph_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of answerable questions also trained as unanswerable over another paragraph "
        "of their article that lacks every gold answer.")] = 0.0,
    retrieved_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of answerable questions also trained as unanswerable over the best BM25 "
        "paragraph of another training article that lacks every gold answer.")] = 0.0,
    perturbed_negatives: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of answerable questions also trained as unanswerable over their own paragraph, "
        "changed so that it no longer answers them (a name, number or antonym swapped, a negation: SQuAD 2.0's "
        "kind).")] = 0.0,
    perturbed_kinds: Annotated[str, typer.Option(
        help="Comma-separated rules that make the --perturbed-negatives: number, entity, antonym, negation (the "
        "default, reader v5's), month (a month swapped), opposite (a wider lexicon of opposites: "
        "supported/opposed, husband/wife, public/private), negation_local (a negation over paragraphs that negate "
        "only other verbs), ordinal (20th -> 21st), entity_local (a name swapped for another name of the same "
        "paragraph, whose sentences do not answer the question) and ordinal_word (second -> "
        "third).")] = "number,entity,antonym,negation",
    negative_weight: Annotated[float, typer.Option(
        min=0.01, help="Loss weight of unanswerable windows (mined or real) against answerable "
        "ones.")] = 1.0,
    attention_dropout: Annotated[float | None, typer.Option(
        min=0.0, max=0.99, help="Dropout on attention probabilities. [default: the base model's own]")] = None,
    teacher: Annotated[list[str] | None, typer.Option(
        "--teacher", help="Reader (folder or Hugging Face id) whose logits, averaged over every --teacher, the model "
        "also learns from: knowledge distillation (repeat; same tokenizer).")] = None,
    distill_weight: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of the loss from the teachers' soft targets (the rest: the gold spans).")] = 0.9,
    distill_temperature: Annotated[float, typer.Option(
        min=0.01, help="Softmax temperature of the distillation targets.")] = 2.0,
    distill_answers_only: Annotated[bool, typer.Option(
        "--distill-answers-only", help="Distil only the windows that hold their gold answer; \"no answer\" windows "
        "learn from their label alone. With the base model as --teacher it keeps its answers while learning to "
        "abstain (learning without forgetting).")] = False,
) -> None:
    """Fine-tune an extractive reader (encoder + span head) on SQuAD-format files.

    Recipe: windows of MAX_LENGTH tokens with DOC_STRIDE overlap; unanswerable (v2.0) questions
    point at [CLS] so the reader learns to abstain; AdamW with warm-up and linear decay;
    length-bucketed batches; optionally distilled from --teacher readers. Deterministic for a seed.
    At the end, EM/F1 and no-answer accuracy on the --dev-article titles (held out of training) are
    printed and saved in training.json.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from transformers.utils import logging as hf_logging

    from qa.training import TrainConfig
    from qa.training import train_reader as run_training
    from qa.trainset import parse_source

    hf_logging.disable_progress_bar()  # our own bar shows the progress

    if log_file is not None:
        import logging

        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        for name in ("qa.training", "qa.trainset"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
    if distill_answers_only and not teacher:
        raise typer.BadParameter("needs at least one --teacher", param_hint="--distill-answers-only")
    sources = run_or_exit(lambda: [parse_source(spec) for spec in train])
    cfg = TrainConfig(
        train_files=tuple(s.path for s in sources), output_dir=str(output), base_model=base_model,
        train_weights=tuple(s.weight for s in sources) if any(s.weight != 1.0 for s in sources) else (),
        threads=threads, paragraph_negatives=paragraph_negatives, retrieved_negatives=retrieved_negatives,
        negative_weight=negative_weight, attention_dropout=attention_dropout,
        dev_articles=tuple(dev_article or ()), max_length=max_length, doc_stride=doc_stride, epochs=epochs,
        batch_size=batch_size, learning_rate=learning_rate, seed=seed, device=device, precision=precision,
        max_steps=max_steps,
        save_every=save_every, resume=resume, synthetic_negatives=synthetic_negatives,
        perturbed_negatives=perturbed_negatives, perturbed_kinds=_kinds(perturbed_kinds),
        teachers=tuple(teacher or ()), distill_weight=distill_weight, distill_temperature=distill_temperature,
        distill_answers_only=distill_answers_only,
    )
    cols = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    with Progress(*cols, console=common.err()) as bar:
        prep = bar.add_task("featurizing", total=None, loss=0.0)
        task = bar.add_task("training", total=None, loss=0.0, visible=False)

        def on_step(s: int, n: int, loss: float) -> None:
            bar.update(task, completed=s, total=n, loss=loss, visible=True)

        result = run_or_exit(lambda: run_training(
            cfg, progress=on_step, featurize_progress=lambda d, n: bar.update(prep, completed=d, total=n)))
    print_json({"output_dir": result.output_dir, "steps": result.steps, "seconds": round(result.seconds, 1),
                 "examples": result.example_counts, "windows": result.train_features,
                 "featurize_seconds": round(result.featurize_seconds, 1),
                 "dev": None if result.dev is None else {k: getattr(result.dev, k) for k in result.dev.__slots__}})


def _kinds(spec: str) -> tuple[str, ...]:
    """--perturbed-kinds as a tuple, every kind known (typer.BadParameter names the unknown ones)."""
    from qa.perturb import check_kinds

    try:
        return check_kinds([k.strip() for k in spec.split(",") if k.strip()])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--perturbed-kinds") from None
