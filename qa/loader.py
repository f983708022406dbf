"""Find document files and read them into Documents (UTF-8 text verbatim; HTML and PDF text extracted)."""

from __future__ import annotations

import codecs
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from qa.errors import DocumentError
from qa.schema import Document

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES

_MB = 1024 * 1024
_TITLE_CHARS = 200
# A code point in the surrogate range is always unpaired in a Python str (pypdf decodes broken font maps with
# "surrogatepass"); it cannot be tokenized or stored as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def load_document(path: Path, doc_id: str, *, max_file_mb: float = 50.0) -> Document:
    """Read one file into a Document.

    ``.txt`` and ``.md`` are decoded as UTF-8 exactly as written (no newline translation; only
    a leading byte-order mark is dropped). ``.html``/``.htm`` go through trafilatura's main-text
    extraction and ``.pdf`` through pypdf (pages joined by a blank line); for those, the
    extracted text is the document text that offsets point into.

    Args:
        path: the file.
        doc_id: the id the document gets.
        max_file_mb: larger files are refused before any byte is read.

    Returns:
        The document, with ``source`` the file's absolute path.

    Raises:
        DocumentError: the file is missing, too large, empty, binary, not UTF-8, of an
            unsupported type, unreadable, or yields no text; the reason says which.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            str(path), f"unsupported file type {suffix or '(none)'!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    data = _read_bytes(path, max_file_mb)
    if suffix in TEXT_SUFFIXES:
        text = _decode_text(path, data)
        title = _text_title(text, markdown=suffix == ".md")
    elif suffix in HTML_SUFFIXES:
        text, title = _extract_html(path, data)
    else:
        text, title = _extract_pdf(path, data), ""
    # Extracted text may carry unpaired surrogates: each becomes U+FFFD, one code point for one, so the text
    # keeps its length and every other character its offset. (UTF-8 decoding already refuses them.)
    text, title = _LONE_SURROGATE.sub("\ufffd", text), _LONE_SURROGATE.sub("\ufffd", title)
    # absolute, so that `qa index --prune` run from another folder still finds the file
    return Document(doc_id=doc_id, text=text, title=title, source=str(path.absolute()))


def _read_bytes(path: Path, max_file_mb: float) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DocumentError(str(path), "no such file or directory") from None
    except OSError as exc:
        raise DocumentError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if path.is_dir():
        raise DocumentError(str(path), "is a folder, not a file")
    if st.st_size > max_file_mb * _MB:
        raise DocumentError(
            str(path),
            f"file too large: {st.st_size / _MB:.1f} MB is over the {max_file_mb:g} MB limit"
            " (raise it with --max-file-mb)",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if not data:
        raise DocumentError(str(path), "empty file (0 bytes)")
    return data


def _decode_text(path: Path, data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DocumentError(str(path), "encoded as UTF-16; only UTF-8 text is supported (save it as UTF-8)")
    nul = data.find(b"\x00")
    if nul != -1:
        raise DocumentError(str(path), f"binary content (NUL byte at byte offset {nul}); not a text file")
    skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            str(path), f"not valid UTF-8 at byte offset {exc.start + skip} ({exc.reason}); save it as UTF-8"
        ) from None
    if not text.strip():
        raise DocumentError(str(path), "empty document: only whitespace")
    return text


def _text_title(text: str, *, markdown: bool) -> str:
    """The first non-empty line, stripped (for Markdown, without its heading marks)."""
    for line in text.splitlines():
        title = line.strip()
        if not title:
            continue
        if markdown and title.startswith("#"):
            title = title.lstrip("#").strip() or title
        return title[:_TITLE_CHARS]
    return ""


def _extract_html(path: Path, data: bytes) -> tuple[str, str]:
    if not data.strip():
        raise DocumentError(str(path), "empty document: only whitespace")
    try:
        import trafilatura

        result = trafilatura.bare_extraction(data, with_metadata=True, include_comments=False, favor_recall=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure is this file's fault, reported as such
        raise DocumentError(str(path), f"cannot read HTML: {type(exc).__name__}: {exc}") from None
    text = getattr(result, "text", None) or ""
    if not text.strip():
        raise DocumentError(str(path), "no text extracted from HTML (no main content found)")
    title = (getattr(result, "title", None) or "").strip()[:_TITLE_CHARS]
    return text, title


def _extract_pdf(path: Path, data: bytes) -> str:
    import io

    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(str(path), "PDF is encrypted with a password")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on damaged files
        raise DocumentError(str(path), f"cannot read PDF: {type(exc).__name__}: {exc}") from None
    text = "\n\n".join(pages)
    if not text.strip():
        raise DocumentError(
            str(path), f"no text extracted from PDF ({len(pages)} page(s); scanned images without a text layer?)"
        )
    return text


def find_document_files(
    paths: Sequence[str | Path], *, on_clash: Callable[[DocumentError], None] | None = None
) -> list[tuple[Path, str]]:
    """Expand files and folders into ``(path, doc_id)`` pairs, sorted by doc_id.

    Folders are walked recursively, skipping hidden files and folders (names starting with
    ".") and files whose suffix is not supported. A file inside a folder gets the doc_id of its
    path relative to that folder, without suffix, with "/" separators (``seeds/news/a.txt``
    given ``seeds`` is ``news/a``); a file named directly gets its stem, and is kept whatever
    its suffix so that loading it reports an unsupported type instead of skipping it silently.
    A file reached twice (a folder and a file inside it) is kept once.

    Args:
        paths: files and folders.
        on_clash: called with the DocumentError of a file whose doc_id an earlier file already has
            (``notes.md`` beside ``notes.txt``), which is then left out; None raises that error instead.

    Returns:
        ``(path, doc_id)`` pairs in doc_id order.

    Raises:
        DocumentError: a path does not exist, or two files map to the same doc_id and ``on_clash`` is None.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: dict[str, Path] = {}
    seen: set[Path] = set()
    for arg in paths:
        root = Path(arg)
        if not root.exists():
            raise DocumentError(str(root), "no such file or directory")
        if root.is_dir():
            pairs = [(f, f.relative_to(root).with_suffix("").as_posix()) for f in _walk(root)]
        else:
            pairs = [(root, root.stem)]
        for file, doc_id in pairs:
            key = file.resolve()
            if key in seen:
                continue
            seen.add(key)
            if doc_id in found:
                clash = DocumentError(
                    str(file), f"doc_id {doc_id!r} is also the id of {found[doc_id]}; rename one of the two files"
                )
                if on_clash is None:
                    raise clash
                on_clash(clash)
                continue
            found[doc_id] = file
    return [(found[doc_id], doc_id) for doc_id in sorted(found)]


def _walk(root: Path) -> list[Path]:
    """Supported, non-hidden files under ``root``, in sorted order."""
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(Path(folder) / name)
    return files


def load_documents(
    paths: str | Path | Sequence[str | Path],
    *,
    max_file_mb: float = 50.0,
    on_error: str = "skip",
    report: Callable[[DocumentError], None] | None = None,
) -> list[Document]:
    """Load every supported file under ``paths`` (see :func:`find_document_files`).

    Args:
        paths: a file or folder, or several.
        max_file_mb: larger files are refused without being read.
        on_error: ``"skip"``: a bad file is logged, passed to ``report`` and skipped;
            ``"stop"``: its DocumentError is raised.
        report: called with the DocumentError of each skipped file.

    Returns:
        The documents in doc_id order (possibly empty).

    Raises:
        DocumentError: a path does not exist (whatever ``on_error`` says), or, with ``on_error="stop"``,
            a file cannot be loaded or two files share a doc_id (with "skip", the second one is skipped).
    """
    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error must be 'skip' or 'stop', got {on_error!r}")

    def skip(err: DocumentError) -> None:
        log.warning("skipped %s", err)
        if report is not None:
            report(err)

    files = find_document_files(
        [paths] if isinstance(paths, (str, Path)) else paths, on_clash=skip if on_error == "skip" else None
    )
    docs: list[Document] = []
    for path, doc_id in files:
        try:
            docs.append(load_document(path, doc_id, max_file_mb=max_file_mb))
        except DocumentError as err:
            if on_error == "stop":
                raise
            skip(err)
    log.info("loaded %d of %d document file(s)", len(docs), len(files))
    return docs
