"""Extractive reader: scores answer spans in retrieved passages with a question-answering model.

transformers 5 has no question-answering pipeline, so spans are decoded here from
``AutoModelForQuestionAnswering`` logits and the fast tokenizer's offset mapping.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from qa.config import model_cache_dir
from qa.errors import ModelLoadError
from qa.metrics import normalize_answer
from qa.schema import Answer, Hit, Span
from qa.spans import decode_window, sigmoid

log = logging.getLogger(__name__)

#: Questions are cut to this many tokens before reading, so the passage always gets most of a window.
MAX_QUESTION_TOKENS = 64
_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class Reader(Protocol):
    """Picks answer spans out of retrieved passages."""

    def read(self, question: str, hits: Sequence[Hit], *, max_answers: int, min_score: float) -> list[Answer]:
        """Answers best first, each scoring at least ``min_score``; [] means no answer."""
        ...


def _weights_digest(path: Path) -> str:
    """A short hash of a local model folder's weights and config, to key derived files."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(path)):
        if name.endswith((".safetensors", ".bin", "config.json")):
            h.update(name.encode())
            with open(path / name, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def onnx_int8_path(model_path: str) -> Path | None:
    """Where the int8 ONNX export of a local model folder is cached, or None for a hub id."""
    p = Path(model_path)
    if not p.is_dir():
        return None
    return model_cache_dir() / f"reader-{_weights_digest(p)}" / "model-int8.onnx"


def export_onnx_int8(model, tokenizer, target: Path) -> Path:
    """Export a torch QA model to ONNX and quantize its weights to int8 (dynamic quantization).

    Written to a temporary file in the target folder and moved into place, so a crash never
    leaves a half-written model that a later run would load.
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    enc = tokenizer(["who?", "where is it?"], ["a passage.", "another passage here."], return_tensors="pt", padding=True)
    args = tuple(enc[k] for k in _ONNX_INPUTS)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model.onnx"
        axes = {k: {0: "batch", 1: "seq"} for k in (*_ONNX_INPUTS, "start_logits", "end_logits")}
        with torch.inference_mode():
            torch.onnx.export(
                model,
                args,
                str(fp32),
                input_names=list(_ONNX_INPUTS),
                output_names=["start_logits", "end_logits"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        q = Path(tmp) / "model-int8.onnx"
        quantize_dynamic(str(fp32), str(q), weight_type=QuantType.QInt8)
        os.replace(q, target)
    return target


class TransformersReader:
    """A Hugging Face extractive QA model (id or local folder), run with torch or ONNX Runtime int8.

    Loads lazily on first use. ``runtime="auto"`` uses an int8 ONNX export of a local model,
    built once into the model cache, and falls back to torch where ONNX Runtime is unavailable.
    """

    def __init__(
        self,
        path: str,
        *,
        max_length: int = 256,
        stride: int = 96,
        max_answer_tokens: int = 30,
        runtime: str = "auto",
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        """See the class docstring; ``threads`` caps intra-op threads of the runtime."""
        self.path = path
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self.runtime = runtime
        self.device = device
        self.threads = threads
        self._tokenizer = None
        self._torch_model = None
        self._session = None
        self._lock = threading.Lock()
        self.active_runtime: str | None = None

    # -- loading -------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        """The model's fast tokenizer."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(self.path)
            except Exception as exc:  # noqa: BLE001 - reported with the model named
                raise ModelLoadError(f"cannot load reader tokenizer from {self.path!r}: {exc}") from exc
            if not getattr(tok, "is_fast", False):
                raise ModelLoadError(f"reader {self.path!r} has no fast tokenizer; offsets need one")
            self._tokenizer = tok
        return self._tokenizer

    def _load_torch(self):
        if self._torch_model is None:
            import torch
            from transformers import AutoModelForQuestionAnswering

            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                model = AutoModelForQuestionAnswering.from_pretrained(
                    self.path, dtype=torch.float32, trust_remote_code=False
                )
            except Exception as exc:  # noqa: BLE001 - reported with the model named
                raise ModelLoadError(
                    f"cannot load reader {self.path!r}: {exc}. Give a local folder or an installed "
                    "question-answering model."
                ) from exc
            self._torch_model = model.to(self.device).eval()
        return self._torch_model

    def _load_onnx(self) -> bool:
        """Open (building if needed) the int8 ONNX session; False when it cannot be used."""
        target = onnx_int8_path(self.path)
        if target is None:
            return False
        try:
            import onnxruntime as ort
        except ImportError:
            return False
        if not target.exists():
            log.info("building the int8 ONNX reader once, into %s", target)
            try:
                export_onnx_int8(self._load_torch(), self.tokenizer, target)
            except Exception as exc:  # noqa: BLE001 - torch still works; say why ONNX does not
                log.warning("ONNX export of %s failed (%s); using torch", self.path, exc)
                return False
        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(target), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - a damaged cache file: rebuild it next time
            log.warning("cannot open %s (%s); removing it and using torch", target, exc)
            target.unlink(missing_ok=True)
            return False
        self._torch_model = None  # free the torch weights once ONNX runs
        return True

    def warm_up(self) -> None:
        """Load tokenizer and model now (otherwise the first question does it)."""
        with self._lock:
            if self.active_runtime is not None:
                return
            _ = self.tokenizer
            if self.runtime in ("auto", "onnx") and self.device == "cpu" and self._load_onnx():
                self.active_runtime = "onnx-int8"
            elif self.runtime == "onnx":
                raise ModelLoadError(f"reader {self.path!r}: ONNX runtime requested but unavailable")
            else:
                self._load_torch()
                self.active_runtime = "torch"

    # -- reading -------------------------------------------------------------------------------
    def _logits(self, enc) -> tuple[np.ndarray, np.ndarray]:
        if self.active_runtime == "onnx-int8":
            feed = {k: np.asarray(enc[k], dtype=np.int64) for k in _ONNX_INPUTS if k in enc}
            if "token_type_ids" not in feed:
                feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            start, end = self._session.run(["start_logits", "end_logits"], feed)
            return np.asarray(start, np.float32), np.asarray(end, np.float32)
        import torch

        inputs = {k: torch.as_tensor(np.asarray(enc[k])).to(self.device) for k in _ONNX_INPUTS if k in enc}
        with torch.inference_mode():
            out = self._torch_model(**inputs)
        return out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()

    def _clip_question(self, question: str) -> str:
        ids = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        offsets = ids["offset_mapping"]
        if len(offsets) <= MAX_QUESTION_TOKENS:
            return question
        return question[: offsets[MAX_QUESTION_TOKENS - 1][1]]

    def read(
        self, question: str, hits: Sequence[Hit], *, max_answers: int = 3, min_score: float = 0.5
    ) -> list[Answer]:
        """Best answers over all passages, each scoring at least ``min_score``.

        All passages go through the model in one batch; a passage longer than a window is
        read in overlapping windows. A span's score is the logistic of how much the model
        prefers it over "no answer" in the same window, so scores compare across passages.
        The same answer found in overlapping passages is merged: answers never overlap.

        Args:
            question: the question.
            hits: retrieved passages.
            max_answers: most answers returned.
            min_score: answers scoring lower are dropped; none left means "no answer".

        Returns:
            Answers best first, with offsets into each passage's document.
        """
        if not hits:
            return []
        self.warm_up()
        q = self._clip_question(question)
        enc = self.tokenizer(
            [q] * len(hits),
            [h.chunk.text for h in hits],
            truncation="only_second",
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="longest",
            return_tensors="np",
        )
        start_logits, end_logits = self._logits(enc)
        cands: list[tuple[float, Hit, int, int]] = []
        for w, hit_i in enumerate(enc["overflow_to_sample_mapping"].tolist()):
            mask = np.array([s == 1 for s in enc.sequence_ids(w)])
            for c in decode_window(
                start_logits[w],
                end_logits[w],
                enc["offset_mapping"][w],
                mask,
                max_answer_tokens=self.max_answer_tokens,
                n_best=10,
            ):
                cands.append((sigmoid(c.margin), hits[hit_i], c.char_start, c.char_end))
        cands.sort(key=lambda c: (-c[0], c[1].rank, c[2]))
        answers: list[Answer] = []
        taken: list[tuple[str, int, int, str]] = []
        for score, hit, s, e in cands:
            if score < min_score or len(answers) >= max_answers:
                break
            chunk = hit.chunk
            text = chunk.text[s:e]
            doc_s, doc_e = chunk.char_start + s, chunk.char_start + e
            norm = normalize_answer(text)
            if not norm.strip() and not text.strip():
                continue
            # Merge the same answer seen again (overlapping chunks, nested spans, same words).
            if any(d == chunk.doc_id and (ts < doc_e and doc_s < te) for d, ts, te, _ in taken) or any(
                n == norm and norm for _, _, _, n in taken
            ):
                continue
            taken.append((chunk.doc_id, doc_s, doc_e, norm))
            answers.append(_make_answer(text, score, hit, s, e))
        return answers


def _make_answer(text: str, score: float, hit: Hit, s: int, e: int) -> Answer:
    """An Answer whose context is the sentence(s) of the passage that hold the span."""
    from qa.chunking import sentence_spans

    chunk = hit.chunk
    c0, c1 = s, e
    for sp in sentence_spans(chunk.text):
        if sp.start <= s < sp.end or sp.start < e <= sp.end:
            c0, c1 = min(c0, sp.start), max(c1, sp.end)
    context = chunk.text[c0:c1]
    return Answer(
        text=text,
        score=float(min(1.0, max(0.0, score))),
        doc_id=chunk.doc_id,
        span=Span(chunk.char_start + s, chunk.char_start + e),
        chunk_id=chunk.chunk_id,
        context=context,
        context_span=Span(s - c0, e - c0),
        source=hit.source,
    )
