"""Average the weights of readers fine-tuned from one base (a "model soup", Wortsman et al. 2022).

    python eval/average_readers.py ~/qa-runs/v5d-04 ~/qa-runs/v5d-08 ~/qa-runs/v5e-08 -o ~/qa-runs/soup
    python eval/average_readers.py A:2 B:1 -o OUT        # weighted: A counts twice

Readers fine-tuned from the same checkpoint stay in one basin of the loss, where the mean of their weights is
often as good as the best of them or better, at the cost of one reader at question time. The readers must
share every tensor name and shape, the tokenizer and the model config; the output folder gets the mean of
their weights (in the dtype of the first reader: fp16 for those `qa train-reader` saves), the first reader's
config and tokenizer files, and `soup.json` naming the sources and their weights. Measure the result like any
reader (eval/reader_figures.py) before choosing it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.errors import QAError  # noqa: E402

WEIGHTS = "model.safetensors"
#: Files copied from the first reader; the tokenizer's must be the same in every reader.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
#: Config keys that may differ between readers of one architecture.
CONFIG_FREE = ("_name_or_path", "transformers_version", "torch_dtype", "dtype")


def parse_reader(spec: str) -> tuple[Path, float]:
    """``FOLDER`` or ``FOLDER:WEIGHT`` (a positive number)."""
    path, sep, weight = spec.rpartition(":")
    if sep and not Path(spec).exists():
        try:
            w = float(weight)
        except ValueError:
            raise QAError(f"reader {spec!r}: the weight after ':' must be a number") from None
        if not w > 0:
            raise QAError(f"reader {spec!r}: the weight must be positive")
        return Path(path), w
    return Path(spec), 1.0


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _config(folder: Path) -> dict:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise QAError(f"reader {folder}: config.json cannot be read ({exc})") from None
    return {k: v for k, v in cfg.items() if k not in CONFIG_FREE}


def average_readers(readers: list[tuple[Path, float]], out: Path) -> dict:
    """Write the weighted mean of ``readers``' weights to ``out``; returns what soup.json records."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    if len(readers) < 2:
        raise QAError("give at least two readers to average")
    first = readers[0][0]
    for folder, _ in readers:
        if not (folder / WEIGHTS).is_file():
            raise QAError(f"reader {folder}: no {WEIGHTS}")
        if _config(folder) != _config(first):
            raise QAError(f"reader {folder}: its config.json differs from {first}'s (another architecture)")
        for name in TOKENIZER_FILES:
            if _digest(folder / name) != _digest(first / name):
                raise QAError(f"reader {folder}: its {name} differs from {first}'s (another tokenizer)")
    if (out / WEIGHTS).exists():
        raise QAError(f"{out} already holds a reader; choose another folder")
    total = sum(w for _, w in readers)
    mean: dict[str, np.ndarray] = {}
    dtypes: dict[str, np.dtype] = {}
    for i, (folder, w) in enumerate(readers):
        tensors = load_file(folder / WEIGHTS)
        if i == 0:
            dtypes = {k: v.dtype for k, v in tensors.items()}
            mean = {k: np.zeros(v.shape, dtype=np.float64) for k, v in tensors.items()}
        elif set(tensors) != set(mean):
            raise QAError(f"reader {folder}: its tensors are not {first}'s "
                          f"({len(set(tensors) ^ set(mean))} names differ)")
        for k, v in tensors.items():
            if v.shape != mean[k].shape:
                raise QAError(f"reader {folder}: tensor {k} has shape {v.shape}, not {mean[k].shape}")
            mean[k] += (w / total) * v.astype(np.float64)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.astype(dtypes[k]) for k, v in mean.items()}, out / WEIGHTS, metadata={"format": "pt"})
    shutil.copy(first / "config.json", out / "config.json")
    for name in TOKENIZER_FILES:
        if (first / name).exists():
            shutil.copy(first / name, out / name)
    record = {"readers": [{"path": str(f), "weight": w} for f, w in readers], "tensors": len(mean)}
    (out / "soup.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("readers", nargs="+", help="reader folders, each FOLDER or FOLDER:WEIGHT (default weight 1)")
    ap.add_argument("-o", "--out", type=Path, required=True, help="folder for the averaged reader")
    args = ap.parse_args(argv)
    try:
        record = average_readers([parse_reader(s) for s in args.readers], args.out)
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: mean of {len(record['readers'])} readers' {record['tensors']} tensors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
