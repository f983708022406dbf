"""Embedders: the Embedder protocol and the sentence-transformers implementation."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from qa.config import missing_model_folder
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
            if missing_model_folder(self.path):
                raise ModelLoadError(f"embedder {self.path!r}: no such folder")
            try:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self.path, device=self.device, trust_remote_code=False)
            except Exception as exc:  # noqa: BLE001 - any load failure is reported with the model named
                raise ModelLoadError(
                    f"cannot load embedder {self.path!r}: {exc}. Give a local folder or an installed model."
                ) from exc
        return self._model

    def _local_tokenizer(self):
        """The bare `tokenizers` tokenizer of a local model folder (no torch or transformers import)."""
        path = Path(self.path) / "tokenizer.json"
        if not path.is_file():
            return None
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        tok.no_padding()
        tok.no_truncation()
        return tok

    @property
    def dim(self) -> int:
        """Vector dimension, read from a local folder's pooling config when the model is not loaded yet."""
        if self._model is None:
            pooling = Path(self.path) / "1_Pooling" / "config.json"
            modules = Path(self.path) / "modules.json"
            try:
                kinds = [m.get("type", "") for m in json.loads(modules.read_text())]
                if all(k.endswith(("Transformer", "Pooling", "Normalize")) for k in kinds):
                    return int(json.loads(pooling.read_text())["word_embedding_dimension"])
            except (OSError, ValueError, KeyError):
                pass
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    @property
    def max_tokens(self) -> int:
        """Longest input the embedder reads, in tokens."""
        return int(getattr(self.model, "max_seq_length", 256) or 256)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """float32[n, dim], normalised, encoded in batches; ``progress(n_done)`` after each batch."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Longest first over the whole list, as one encode() call would sort them: slicing for the
        # progress bar must not cost padding (slices in input order ran at 80% of one call's speed).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        step = self.batch_size * 4
        for b in range(0, len(texts), step):
            rows = order[b : b + step]
            part = [texts[i] for i in rows]
            out[rows] = self.model.encode(
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
        if self._tokenizer is None:
            self._tokenizer = self._local_tokenizer() or self.model.tokenizer
        if hasattr(self._tokenizer, "encode_batch"):
            return [len(e.ids) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]
        enc = self._tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
        return [len(ids) for ids in enc["input_ids"]]
