"""Embedders: the Embedder protocol and the sentence-transformers implementation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from qa.errors import ModelLoadError

log = logging.getLogger(__name__)


@runtime_checkable
class Embedder(Protocol):
    """Turns passages and questions into L2-normalised float32 vectors."""

    model_name: str

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """float32[n, dim], one normalised row per text."""
        ...

    def encode_query(self, text: str) -> np.ndarray:
        """float32[dim], normalised."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text in the embedder's own tokenizer (no special tokens)."""
        ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded lazily on first use, offline and without remote code."""

    def __init__(self, model_name: str, path: str | None = None, device: str = "cpu", batch_size: int = 64):
        """Args: model_name is what the manifest records; path is where to load from (default: model_name)."""
        self.model_name = model_name
        self.path = path or model_name
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._tokenizer = None

    @property
    def model(self):
        """The loaded SentenceTransformer."""
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self.path, device=self.device, trust_remote_code=False)
            except Exception as exc:  # noqa: BLE001 - any load failure is reported with the model named
                raise ModelLoadError(
                    f"cannot load embedder {self.path!r}: {exc}. Give a local folder or an installed model."
                ) from exc
        return self._model

    @property
    def tokenizer(self):
        """The embedder's fast tokenizer, loaded without the model weights when possible."""
        if self._tokenizer is None:
            if self._model is not None:
                self._tokenizer = self._model.tokenizer
            else:
                try:
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(self.path)
                except Exception:  # noqa: BLE001 - fall back to the full model's tokenizer
                    self._tokenizer = self.model.tokenizer
        return self._tokenizer

    @property
    def dim(self) -> int:
        """Vector dimension."""
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_tokens(self) -> int:
        """Longest input the embedder reads, in tokens."""
        return int(getattr(self.model, "max_seq_length", 256) or 256)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """float32[n, dim], normalised, encoded in batches; ``progress(n_done)`` after each batch."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        step = self.batch_size * 4
        for b in range(0, len(texts), step):
            part = list(texts[b : b + step])
            out[b : b + len(part)] = self.model.encode(
                part,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            if progress is not None:
                progress(b + len(part))
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """float32[dim], normalised."""
        vec = self.model.encode([text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vec[0], dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, without special tokens."""
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in enc["input_ids"]]
