"""Milvus collections of a qa index: their schema, names and limits, and the text BM25 counts (qa.store.milvus)."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from qa.errors import QAError
from qa.schema import Chunk, Document
from qa.store.rows import _STOP_WORDS, document_sha256

PREFIX = "qa_"
PART_CHARS = 16_000  # 4 bytes a character at most: a part stays under Milvus' 65,535-byte strings
MAX_STRING = 65_535
ID_CHARS = 1_024
DUMMY_DIM = 2  # every Milvus collection needs a vector field; the bookkeeping ones carry a constant one
DUMMY = [0.0, 1.0]
PAGE = 1_000


def create_collections(client: Any, *, dim: int) -> None:
    """The four collections of an index (``qa_manifest``, ``qa_documents``, ``qa_parts``, ``qa_passages``)."""
    from pymilvus import DataType, Function, FunctionType

    def bookkeeping(name: str, fields: list[tuple[str, Any, dict]]) -> None:
        schema = client.create_schema(auto_id=False)
        for fname, ftype, kw in fields:
            schema.add_field(fname, ftype, **kw)
        schema.add_field("dummy", DataType.FLOAT_VECTOR, dim=DUMMY_DIM)
        index = client.prepare_index_params()
        index.add_index("dummy", index_type="FLAT", metric_type="IP")
        client.create_collection(PREFIX + name, schema=schema, index_params=index, consistency_level="Strong")

    varchar = DataType.VARCHAR
    bookkeeping("manifest", [("version_id", varchar, {"max_length": 160, "is_primary": True}),
                             ("key", varchar, {"max_length": 128}), ("seq", DataType.INT64, {}),
                             ("value", varchar, {"max_length": MAX_STRING})])
    bookkeeping("documents", [
        ("doc_id", varchar, {"max_length": ID_CHARS, "is_primary": True}),
        ("source", varchar, {"max_length": 4_096}), ("title", varchar, {"max_length": 1_024}),
        ("sha256", varchar, {"max_length": 64}), ("n_chars", DataType.INT64, {}),
        ("n_chunks", DataType.INT64, {}), ("n_parts", DataType.INT64, {}),
        ("added_at", varchar, {"max_length": 64}),
    ])
    bookkeeping("parts", [("part_id", varchar, {"max_length": ID_CHARS + 16, "is_primary": True}),
                          ("doc_id", varchar, {"max_length": ID_CHARS}), ("n", DataType.INT64, {}),
                          ("text", varchar, {"max_length": MAX_STRING})])
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("chunk_id", varchar, max_length=ID_CHARS + 16)
    schema.add_field("doc_id", varchar, max_length=ID_CHARS)
    schema.add_field("ordinal", DataType.INT64)
    schema.add_field("char_start", DataType.INT64)
    schema.add_field("char_end", DataType.INT64)
    schema.add_field("text", varchar, max_length=MAX_STRING)
    schema.add_field("bm25_text", varchar, max_length=MAX_STRING, enable_analyzer=True,
                     analyzer_params={"tokenizer": "standard"})
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["bm25_text"],
                                 output_field_names=["sparse"]))
    index = client.prepare_index_params()
    index.add_index("vec", index_type="FLAT", metric_type="IP")  # exact, as the local store below its ANN size
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection(PREFIX + "passages", schema=schema, index_params=index, consistency_level="Strong")


_stemmer = None


def bm25_text(text: str) -> str:
    """The words BM25 counts in ``text``: lower-cased alphanumeric runs (as FTS5's unicode61 splits them), English
    stop words dropped, Porter-stemmed (snowballstemmer), joined by spaces."""
    global _stemmer
    if _stemmer is None:
        import snowballstemmer

        _stemmer = snowballstemmer.stemmer("porter")
    words = [w for w in re.findall(r"[^\W_]+", unicodedata.normalize("NFC", text).casefold())
             if w not in _STOP_WORDS]
    return " ".join(_stemmer.stemWords(words))


def ids_filter(field: str, values: Sequence[str], *, negate: bool = False) -> str:
    """``field in [...]`` (``not in`` with ``negate``: Milvus 2.5 has no ``not (...)``) with each string as a JSON
    literal (Milvus' expressions read JSON string escapes)."""
    op = "not in" if negate else "in"
    return f"{field} {op} [{', '.join(json.dumps(v, ensure_ascii=False) for v in values)}]"


def passage_id(chunk: Chunk, sha: str) -> int:
    """A 60-bit id for a passage: the same passage of the same text always gets the same one."""
    return int(hashlib.sha256(f"{chunk.chunk_id}\x00{sha}".encode()).hexdigest()[:15], 16)


def document_rows(doc: Document, chunks: Sequence[Chunk], vectors: Any, now: str) -> tuple[list, list, dict]:
    """A document's rows: its text in parts, its passages (with BM25 words of their model view and vectors), and
    its marker (the ``documents`` row, written last).

    Raises:
        QAError: an id or a passage too long for Milvus' strings.
    """
    from qa.modeltext import model_view

    if len(doc.doc_id) > ID_CHARS:
        raise QAError(f"document id {doc.doc_id[:60]!r}... is longer than {ID_CHARS} characters")
    sha = document_sha256(doc)
    parts = [doc.text[i : i + PART_CHARS] for i in range(0, len(doc.text), PART_CHARS)] or [""]
    part_rows = [{"part_id": f"{doc.doc_id}#{n}", "doc_id": doc.doc_id, "n": n, "text": p, "dummy": DUMMY}
                 for n, p in enumerate(parts)]
    passages = []
    for n, (c, v) in enumerate(zip(chunks, vectors, strict=True)):
        words = bm25_text(model_view(c.text, doc.source).text)
        for name, value in (("text", c.text), ("bm25_text", words)):
            if len(value.encode("utf-8", "surrogatepass")) > MAX_STRING:
                raise QAError(f"passage {c.chunk_id!r}: its {name} is longer than Milvus' {MAX_STRING}-byte strings")
        passages.append({"id": passage_id(c, sha), "chunk_id": c.chunk_id, "doc_id": doc.doc_id, "ordinal": n,
                         "char_start": c.char_start, "char_end": c.char_end, "text": c.text, "bm25_text": words,
                         "vec": v.tolist()})
    marker = {"doc_id": doc.doc_id, "source": doc.source[:4_096], "title": doc.title[:1_024], "sha256": sha,
              "n_chars": len(doc.text), "n_chunks": len(chunks), "n_parts": len(parts), "added_at": now,
              "dummy": DUMMY}
    return part_rows, passages, marker
