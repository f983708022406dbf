"""Typed errors of the qa library; only the CLI turns them into exit codes."""

from __future__ import annotations


class QAError(Exception):
    """Base class of every error the library raises on bad input or state."""


class IndexNotFoundError(QAError):
    """The index folder does not exist or holds no index."""


class IndexMismatchError(QAError):
    """The index was built with another embedder or format version."""


class IndexCorruptError(QAError):
    """A file of the index is damaged, truncated or out of step with the others."""


class IndexLockedError(QAError):
    """Another process is writing to the index."""


class IndexChangedError(QAError):
    """Another process changed a document of the index while a question was being answered."""


class DocumentNotFoundError(QAError):
    """No document with this id in the index."""


class EmptyCorpusError(QAError):
    """No readable document was found."""


class DocumentError(QAError):
    """A document file cannot be read (binary, bad encoding, empty, too large)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class GoldFileError(QAError):
    """A gold Q&A file is malformed; carries the file and line number."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


class ModelLoadError(QAError):
    """A model (embedder or reader) cannot be loaded."""


class CalibrationError(QAError):
    """A calibration file is missing, malformed, or was fitted for another reader."""


class TrainingDataError(QAError):
    """The training inputs do not fit the run: no questions to train on, an unknown dev article, or a checkpoint
    left by a run with other settings."""


class QuestionError(QAError):
    """The question is empty or otherwise unusable."""
