"""Extractive reader: scores answer spans in retrieved passages with a question-answering model.

transformers 5 has no question-answering pipeline, so spans are decoded here from
``AutoModelForQuestionAnswering`` logits and the fast tokenizer's offset mapping.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qa.config import READER_MAX_QUESTION_TOKENS, Settings, check_reader_window, missing_model_folder
from qa.errors import ModelLoadError
from qa.metrics import normalize_answer
from qa.modeltext import TextView, answer_span, model_view
from qa.schema import Answer, Hit, Span
from qa.spans import answer_score, decode_window, reader_span_breaks

log = logging.getLogger(__name__)
_DEFAULTS = Settings()  # the one home of defaults; constructors take theirs from it



@dataclass(frozen=True, slots=True)
class _Windows:
    """Tokenized (question, passage) windows, padded to the longest."""

    arrays: dict[str, np.ndarray]
    offsets: list[list[tuple[int, int]]]
    passage_mask: list[np.ndarray]
    hit_index: list[int]


class Reader(Protocol):
    """Picks answer spans out of retrieved passages."""

    def read(self, question: str, hits: Sequence[Hit], *, max_answers: int, min_score: float) -> list[Answer]:
        """Answers best first, each scoring at least ``min_score``; [] means no answer."""
        ...


class TransformersReader:
    """A Hugging Face extractive QA model (id or local folder), run with torch or ONNX Runtime.

    Loads lazily on first use. ``runtime="auto"`` uses an fp32 ONNX export of a local model
    (``"onnx-int8"``: int8 weights), built once into the model cache, and falls back to torch
    where ONNX Runtime is unavailable. Defaults are :class:`~qa.config.Settings`' values, except
    ``rank_penalty``: a bare reader scores every passage alike (``make_reader`` applies the setting).
    """

    def __init__(
        self,
        path: str,
        *,
        max_length: int = _DEFAULTS.reader_max_length,
        stride: int = _DEFAULTS.reader_stride,
        max_answer_tokens: int = _DEFAULTS.max_answer_tokens,
        runtime: str = _DEFAULTS.reader_runtime,
        device: str = _DEFAULTS.device,
        threads: int | None = _DEFAULTS.threads,
        rank_penalty: float = 0.0,
        span_breaks: str = _DEFAULTS.span_breaks,
    ) -> None:
        """See the class docstring; ``threads`` caps intra-op threads of the runtime, ``rank_penalty``
        lowers the score of spans in lower-ranked passages (see :func:`qa.spans.answer_score`), ``span_breaks``
        decodes spans across paragraph breaks ("auto": the model folder's ``decoding.json``, else "longer";
        see :func:`qa.spans.reader_span_breaks`)."""
        if rank_penalty < 0:
            raise ValueError(f"rank_penalty must not be negative, got {rank_penalty}")
        check_reader_window(max_length, stride)
        self.span_breaks = reader_span_breaks(path, span_breaks)
        self.rank_penalty = rank_penalty
        self.path = path
        self.max_length = max_length
        self.stride = stride
        self.max_answer_tokens = max_answer_tokens
        self.runtime = runtime
        self.device = device
        self.threads = threads
        self._tokenizer = None
        self._question_tok = None
        self._pad_id = 0
        self._torch_model = None
        self._session = None
        self._onnx_inputs: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self.active_runtime: str | None = None

    # -- loading -------------------------------------------------------------------------------
    def _load_tokenizer(self):
        """The model's fast tokenizer, as a bare `tokenizers.Tokenizer` (no transformers import)."""
        from pathlib import Path

        if missing_model_folder(self.path):
            raise ModelLoadError(f"reader {self.path!r}: no such folder")
        local = Path(self.path) / "tokenizer.json"
        try:
            if local.exists():
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(str(local))
            else:
                from transformers import AutoTokenizer

                fast = AutoTokenizer.from_pretrained(self.path)
                if not getattr(fast, "is_fast", False):
                    raise ModelLoadError(f"reader {self.path!r} has no fast tokenizer; offsets need one")
                tok = copy.deepcopy(fast.backend_tokenizer)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported with the model named
            raise ModelLoadError(f"cannot load the reader's tokenizer from {self.path!r}: {exc}") from exc
        tok.no_padding()
        tok.no_truncation()
        self._question_tok = copy.deepcopy(tok)
        tok.enable_truncation(max_length=self.max_length, stride=self.stride, strategy="only_second")
        self._tokenizer = tok
        self._pad_id = tok.token_to_id("[PAD]") or 0
        if tok.padding is not None and tok.padding.get("pad_id") is not None:
            self._pad_id = tok.padding["pad_id"]

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
        """Open (exporting once if needed) the ONNX session, fp32 or int8; False when it cannot be used."""
        from qa.onnx_models import cached_onnx_path, export_reader, open_export, reader_cache_kind, session

        int8 = self.runtime == "onnx-int8"
        self._session = open_export(
            cached_onnx_path(self.path, reader_cache_kind(int8)),
            lambda target: export_reader(self.path, target, quantize=int8),
            lambda target: session(target, self.threads),
            f"the reader {self.path}",
            "torch",
        )
        if self._session is None:
            return False
        # models without token_type_ids (DistilBERT, RoBERTa) export without that input
        self._onnx_inputs = frozenset(i.name for i in self._session.get_inputs())
        return True

    def warm_up(self) -> None:
        """Load tokenizer and model now (otherwise the first question does it)."""
        with self._lock:
            if self.active_runtime is not None:
                return
            self._load_tokenizer()
            if self.runtime != "torch" and self.device == "cpu" and self._load_onnx():
                self.active_runtime = "onnx-int8" if self.runtime == "onnx-int8" else "onnx"
            elif self.runtime.startswith("onnx"):
                raise ModelLoadError(f"reader {self.path!r}: the ONNX runtime was asked for but is unavailable")
            else:
                self._load_torch()
                self.active_runtime = "torch"

    # -- reading -------------------------------------------------------------------------------
    def _logits(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.active_runtime in ("onnx", "onnx-int8"):
            feed = {k: v for k, v in arrays.items() if k in self._onnx_inputs}
            start, end = self._session.run(["start_logits", "end_logits"], feed)
            return np.asarray(start, np.float32), np.asarray(end, np.float32)
        import torch

        inputs = {k: torch.as_tensor(v).to(self.device) for k, v in arrays.items()}
        with torch.inference_mode():
            out = self._torch_model(**inputs)
        return out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()

    def _window_logits(self, arrays: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Start and end logits of each window, run at its own length (no padding).

        Retrieved passages differ in length (padding filled a fifth of a question's batch on SQuAD);
        one window at a time without padding read 9 % faster than one padded batch on 2 cores.
        Windows of the same length (the full windows of a long passage) still share one run.
        """
        lengths = arrays["attention_mask"].sum(axis=1)
        starts: list[np.ndarray] = [np.empty(0, np.float32)] * len(lengths)
        ends: list[np.ndarray] = [np.empty(0, np.float32)] * len(lengths)
        for n in np.unique(lengths):
            rows = np.flatnonzero(lengths == n)
            s, e = self._logits({k: v[rows, :n] for k, v in arrays.items()})
            for j, w in enumerate(rows):
                starts[w], ends[w] = s[j], e[j]
        return starts, ends

    def _clip_question(self, question: str) -> str:
        # at most READER_MAX_QUESTION_TOKENS (the passage gets most of a window), and short enough that every
        # window keeps more than `stride` passage tokens ([CLS] q [SEP] p [SEP]): the tokenizer needs that room
        keep = min(READER_MAX_QUESTION_TOKENS, self.max_length - self.stride - 4)
        offsets = self._question_tok.encode(question, add_special_tokens=False).offsets
        if len(offsets) <= keep:
            return question
        return question[: offsets[keep - 1][1]]

    def _encode(self, question: str, passages: Sequence[str]) -> _Windows:
        """Every passage in windows of ``max_length`` tokens overlapping by ``stride``, one padded batch."""
        encodings, hit_index = [], []
        for i, enc in enumerate(self._tokenizer.encode_batch([(question, p) for p in passages])):
            for window in (enc, *enc.overflowing):
                encodings.append(window)
                hit_index.append(i)
        n = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), n), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), n), dtype=np.int64)
        types = np.zeros((len(encodings), n), dtype=np.int64)
        offsets, passage_mask = [], []
        for r, e in enumerate(encodings):
            L = len(e.ids)
            ids[r, :L] = e.ids
            mask[r, :L] = e.attention_mask
            types[r, :L] = e.type_ids
            offsets.append(e.offsets)
            passage_mask.append(np.array([s == 1 for s in e.sequence_ids]))
        return _Windows({"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, offsets,
                        passage_mask, hit_index)

    def read(
        self, question: str, hits: Sequence[Hit], *, max_answers: int = 3, min_score: float = 0.5
    ) -> list[Answer]:
        """Best answers over all passages, each scoring at least ``min_score``.

        Each passage goes through the model at its own length; a passage longer than a window is
        read in overlapping windows. A span's score is the logistic of how much the model
        prefers it over "no answer" in the same window, less ``rank_penalty * ln(1 + hit.rank)``,
        so scores compare across passages and a low-ranked passage needs a clearer answer.
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
        # the model reads each passage's view (no markup, no hard wraps); answers cite the stored text
        views = [model_view(h.chunk.text, h.source) for h in hits]
        win = self._encode(self._clip_question(question), [v.text for v in views])
        start_logits, end_logits = self._window_logits(win.arrays)
        cands: list[tuple[float, Hit, int, int]] = []
        for w, hit_i in enumerate(win.hit_index):
            for c in decode_window(
                start_logits[w],
                end_logits[w],
                win.offsets[w],
                win.passage_mask[w],
                max_answer_tokens=self.max_answer_tokens,
                n_best=10,
                text=views[hit_i].text,
                span_breaks=self.span_breaks,
            ):
                hit = hits[hit_i]
                span = answer_span(views[hit_i], c.char_start, c.char_end)
                if span is not None:
                    cands.append((answer_score(c.margin, hit.rank, self.rank_penalty), hit, *span, hit_i))
        cands.sort(key=lambda c: (-c[0], c[1].rank, c[2]))
        answers: list[Answer] = []
        taken: list[tuple[str, int, int, str]] = []
        for score, hit, s, e, hit_i in cands:
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
            answers.append(_make_answer(text, score, hit, s, e, views[hit_i]))
        return answers


def _make_answer(text: str, score: float, hit: Hit, s: int, e: int, view: TextView | None = None) -> Answer:
    """An Answer whose context is the sentence(s) of the passage that hold the span.

    Sentences are found in the passage's view (where a hard-wrapped line does not end one) and cited in the
    stored text.
    """
    from qa.chunking import sentence_spans

    chunk = hit.chunk
    view = view if view is not None else model_view(chunk.text, hit.source)
    c0, c1 = s, e
    for sp in sentence_spans(view.text):
        a, b = view.source_span(sp.start, sp.end)
        if a <= s < b or a < e <= b:
            c0, c1 = min(c0, a), max(c1, b)
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
