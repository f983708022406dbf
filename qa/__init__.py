"""qa: offline extractive question answering over your documents, with cited answer spans.

The public API is imported lazily so that `import qa` (and `qa --help`) stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "Assistant",
    "Chunk",
    "Document",
    "Hit",
    "QAError",
    "QAResult",
    "Settings",
    "Span",
    "build_index",
    "evaluate",
    "remove_documents",
    "show_document",
]

_LAZY = {
    "Assistant": "qa.pipeline",
    "build_index": "qa.indexing",
    "remove_documents": "qa.indexing",
    "show_document": "qa.show",
    "evaluate": "qa.evaluation",
    "Settings": "qa.config",
    "QAError": "qa.errors",
    "Answer": "qa.schema",
    "Chunk": "qa.schema",
    "Document": "qa.schema",
    "Hit": "qa.schema",
    "QAResult": "qa.schema",
    "Span": "qa.schema",
}

if TYPE_CHECKING:
    from qa.config import Settings
    from qa.errors import QAError
    from qa.evaluation import evaluate
    from qa.indexing import build_index, remove_documents
    from qa.pipeline import Assistant
    from qa.schema import Answer, Chunk, Document, Hit, QAResult, Span
    from qa.show import show_document


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qa' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
