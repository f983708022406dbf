"""Reader alone: median ms for one question over 5 windows of 256 tokens (question + passage), per runtime.

    python eval/bench_reader.py [--reader DIR] [--runs 30] [--passages 5] [--tokens 256]

Prints a Markdown table with the machine, and the model's forward pass alone over the same windows
(the floor that tokenizing and span decoding add to). Passages are real text (the seed article, repeated and cut
to exactly TOKENS tokens of the reader's tokenizer), so every window is full length.

Below the table, a roofline: the forward pass's arithmetic (multiply-adds of the encoder's matrix products,
counted from the model's config) against this machine's measured fp32 matrix-product throughput, so that a
latency target can be checked against what the hardware can do at all.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from qa.config import Settings
from qa.factory import make_reader
from qa.machine import cpu_model
from qa.schema import Chunk, Hit

ROOT = Path(__file__).resolve().parents[1]


def passages(reader, question: str, n: int, tokens: int) -> list[Hit]:
    text = (ROOT / "seeds" / "isis-k-moscow-attack.txt").read_text(encoding="utf-8")
    words = (text + " ") * 4
    reader.warm_up()
    enc = reader._question_tok.encode(words, add_special_tokens=False)
    tokens -= len(reader._question_tok.encode(question, add_special_tokens=False).ids) + 3  # [CLS] q [SEP] p [SEP]
    hits = []
    for i in range(n):
        start_tok = (i * 37) % max(1, len(enc.offsets) - tokens)
        s, e = enc.offsets[start_tok][0], enc.offsets[start_tok + tokens - 1][1]
        body = words[s:e]
        hits.append(Hit(Chunk(f"bench#{i}", "bench", 0, len(body), body), 1.0, i))
    return hits


def forward_gflop(config, lengths: list[int]) -> float:
    """Floating-point operations (2 per multiply-add) of a BERT-style encoder's matrix products over windows of
    ``lengths`` tokens: per layer and token, Q/K/V/output projections (4 h^2), the feed-forward pair (2 h i), and
    attention scores and mixing (2 n h). Embeddings, norms and softmax are left out (a few per cent)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return sum(layers * 2 * n * (4 * h * h + 2 * h * i + 2 * n * h) for n in lengths) / 1e9


def matmul_gflops(rows: int, hidden: int, inner: int, runs: int = 30) -> float:
    """Measured fp32 throughput of one model-shaped matrix product (rows x hidden @ hidden x inner), GFLOP/s,
    median of ``runs``, with the BLAS threads numpy has (all cores by default)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, hidden), dtype=np.float32)
    w = rng.standard_normal((hidden, inner), dtype=np.float32)
    times = []
    for _ in range(runs + 3):
        t0 = time.perf_counter()
        a @ w
        times.append(time.perf_counter() - t0)
    return 2 * rows * hidden * inner / statistics.median(times[3:]) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reader", default=None, help="reader folder (default: the shipped one)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--passages", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=256, help="window length in reader tokens (question + passage)")
    args = ap.parse_args()
    question = "When was ISIS-K formed and where is it active?"
    print(f"**Machine:** {cpu_model()}, {os.cpu_count()} cores; one question, {args.passages} passages of "
          f"{args.tokens}-token windows, median of {args.runs} runs after 3 warm-up runs\n")
    print("| runtime | median ms | p90 ms | model forward alone, median ms |\n|---|---|---|---|")
    fp32_forward = None
    for runtime in ("torch", "onnx", "onnx-int8"):
        reader = make_reader(Settings(reader=args.reader, reader_runtime=runtime, reader_max_length=args.tokens))
        hits = passages(reader, question, args.passages, args.tokens)
        for _ in range(3):
            reader.read(question, hits, min_score=0.0)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            reader.read(question, hits, min_score=0.0)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        p90 = times[int(0.9 * (len(times) - 1))]
        # The floor: the same windows through the model alone (no tokenizing, no span decoding).
        arrays = reader._encode(reader._clip_question(question), [h.chunk.text for h in hits]).arrays
        forward = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            reader._window_logits(arrays)  # what read() runs
            forward.append((time.perf_counter() - t0) * 1000)
        print(f"| {reader.active_runtime} | {statistics.median(times):.1f} | {p90:.1f} | "
              f"{statistics.median(forward):.1f} |")
        if runtime == "onnx":
            lengths = [int(n) for n in arrays["attention_mask"].sum(axis=1)]
            fp32_forward = statistics.median(forward)
    if fp32_forward is not None:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(reader.path)
        gflop = forward_gflop(config, lengths)
        peak = matmul_gflops(sum(lengths), config.hidden_size, config.intermediate_size)
        print(f"\n**Roofline:** the forward pass is {gflop:.1f} GFLOP ({len(lengths)} windows of {max(lengths)} "
              f"tokens, {config.num_hidden_layers} layers, hidden {config.hidden_size}); this machine's fp32 "
              f"matrix product (model-shaped, {sum(lengths)} x {config.hidden_size} @ {config.hidden_size} x "
              f"{config.intermediate_size}) runs at {peak:.0f} GFLOP/s, so no fp32 runtime can do it in under "
              f"{1000 * gflop / peak:.0f} ms here; ONNX fp32 took {fp32_forward:.0f} ms "
              f"({gflop / fp32_forward * 1000:.0f} GFLOP/s, {100 * gflop / fp32_forward * 1000 / peak:.0f} % of it).")


if __name__ == "__main__":
    main()
