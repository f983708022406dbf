"""Read document files into Documents (text files verbatim; HTML, PDF and DOCX text extracted); which files are
documents is :mod:`qa.discovery`'s job."""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.discovery import (
    DOCX_SUFFIXES,
    HTML_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TEXT_SUFFIXES,
    document_format,
    scan_document_files,
    unsupported_reason,
)
from qa.errors import DocumentError
from qa.schema import Document

log = logging.getLogger(__name__)

_MB = 1024 * 1024
_TITLE_CHARS = 200
# A code point in the surrogate range is always unpaired in a Python str (pypdf decodes broken font maps with
# "surrogatepass"); it cannot be tokenized or stored as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Byte-order marks that name their encoding; UTF-32 first, as its little-endian mark starts with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A document and how its file was decoded."""

    document: Document
    encoding: str | None  # the text encoding of a .txt/.md/.rst file ("utf-8", "cp1252", ...); None if extracted


def load_document(path: Path, doc_id: str, *, max_file_mb: float = 50.0) -> Document:
    """Read one file into a Document (see :func:`read_document`, which also says how it was decoded)."""
    return read_document(path, doc_id, max_file_mb=max_file_mb).document


def read_document(path: Path, doc_id: str, *, max_file_mb: float = 50.0) -> LoadedDocument:
    """Read one file into a Document, and say which text encoding it was decoded with.

    A gzip-compressed file (``FAQ.txt.gz``) is read as the file inside it, and README, NEWS, FAQ and the
    like without a suffix as ``.txt`` (:func:`qa.discovery.document_format`).
    ``.txt``, ``.md`` and ``.rst`` are text exactly as written (no newline translation; only a
    leading byte-order mark is dropped): UTF-8, or the encoding a byte-order mark names
    (UTF-16/32), or else the encoding charset-normalizer detects (``cp1252``, ``cp1251``, ...).
    ``.html``/``.htm`` go through trafilatura's main-text extraction, ``.pdf`` through pypdf
    (pages joined by a blank line) and ``.docx`` through python-docx (the non-empty body
    paragraphs joined by a blank line; tables, headers, footers and notes are not read); for
    those, the extracted text is the document text that offsets point into.

    Args:
        path: the file.
        doc_id: the id the document gets.
        max_file_mb: larger files are refused before any byte is read (a compressed one also once it
            decompresses past it).

    Returns:
        The document, with ``source`` the file's absolute path, and the text encoding of a text file.

    Raises:
        DocumentError: the file is missing, too large, empty, binary, in no encoding that fits,
            of an unsupported format, unreadable, or yields no text; the reason says which.
    """
    path = Path(path)
    fmt = document_format(path)
    if fmt is None:
        raise DocumentError(str(path), f"{unsupported_reason(path)}; supported: {', '.join(SUPPORTED_SUFFIXES)}, "
                            "each also gzip-compressed (.gz), and README, NEWS, FAQ ... without a suffix")
    suffix, compressed = fmt
    data = _read_bytes(path, max_file_mb)
    if compressed:
        data = _gunzip(path, data, max_file_mb)
    encoding = None
    if suffix in TEXT_SUFFIXES:
        text, encoding = _decode_text(path, data)
        title = _text_title(text, suffix)
    elif suffix in HTML_SUFFIXES:
        text, title = _extract_html(path, data)
    elif suffix in DOCX_SUFFIXES:
        text, title = _extract_docx(path, data)
    else:
        text, title = _extract_pdf(path, data), ""
    # Extracted text may carry unpaired surrogates: each becomes U+FFFD, one code point for one, so the text
    # keeps its length and every other character its offset. (Strict decoding already refuses them.)
    text, title = _LONE_SURROGATE.sub("\ufffd", text), _LONE_SURROGATE.sub("\ufffd", title)
    # absolute, so that `qa index --prune` run from another folder still finds the file
    document = Document(doc_id=doc_id, text=text, title=title, source=str(path.absolute()))
    return LoadedDocument(document, encoding)


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


def _gunzip(path: Path, data: bytes, max_file_mb: float) -> bytes:
    """The bytes inside a gzip file, refused past ``max_file_mb`` once decompressed (read no further)."""
    import gzip
    import io
    import zlib

    limit = int(max_file_mb * _MB)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            inner = f.read(limit + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DocumentError(str(path), f"not a valid gzip file ({exc})") from None
    if len(inner) > limit:
        raise DocumentError(
            str(path),
            f"file too large: over the {max_file_mb:g} MB limit once decompressed (raise it with --max-file-mb)",
        )
    if not inner:
        raise DocumentError(str(path), "empty file (0 bytes once decompressed)")
    return inner


def _decode_text(path: Path, data: bytes) -> tuple[str, str]:
    """The text and the encoding it was decoded with: the one a byte-order mark names, else UTF-8, else the one
    charset-normalizer detects. Files with NUL bytes (and no UTF-16/32 mark) are binary."""
    bom, marked = next(((bom, enc) for bom, enc in _BOMS if data.startswith(bom)), (b"", None))
    if marked in (None, "utf-8"):
        nul = data.find(b"\x00")
        if nul != -1:
            raise DocumentError(str(path), f"binary content (NUL byte at byte offset {nul}); not a text file")
    if marked is not None:
        # the utf-16/utf-32 codecs read the mark (and so the byte order) themselves
        skip = len(bom) if marked == "utf-8" else 0
        try:
            text = data[skip:].decode(marked)
        except UnicodeDecodeError as exc:
            name = marked.upper()
            raise DocumentError(
                str(path), f"starts with a {name} byte-order mark but is not valid {name} at byte offset "
                f"{exc.start + skip} ({exc.reason}); save it as UTF-8"
            ) from None
        encoding = marked
    else:
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            encoding = _detect_encoding(data)
            if encoding is None:
                raise DocumentError(
                    str(path), f"not valid UTF-8 at byte offset {exc.start} ({exc.reason}) and no other text "
                    "encoding fits; save it as UTF-8"
                ) from None
            try:  # charset-normalizer judges samples of a long file; the whole of it must decode too
                text = data.decode(encoding)
            except UnicodeDecodeError as bad:
                raise DocumentError(
                    str(path), f"not valid UTF-8 at byte offset {exc.start} ({exc.reason}), and not valid "
                    f"{encoding} (the encoding detected) at byte offset {bad.start}; save it as UTF-8"
                ) from None
            log.info("%s: not UTF-8, read as %s", path, encoding)
    if not text.strip():
        raise DocumentError(str(path), "empty document: only whitespace")
    return text, encoding


# charset-normalizer also weighs DOS, classic Mac and EBCDIC code pages; on Western text their guesses often
# shadow Windows-1252 (typographic quotes read as "ô...ö" in cp852), which is what such files almost always are.
_RARE_CODE_PAGES = (
    "cp037", "cp273", "cp424", "cp437", "cp500", "cp720", "cp737", "cp775", "cp850", "cp852", "cp855", "cp856",
    "cp857", "cp858", "cp860", "cp861", "cp862", "cp863", "cp864", "cp865", "cp866", "cp869", "cp875", "cp1006",
    "cp1026", "cp1125", "cp1140", "hp_roman8", "kz1048", "koi8_t", "ptcp154", "mac_arabic", "mac_croatian",
    "mac_cyrillic", "mac_farsi", "mac_greek", "mac_iceland", "mac_latin2", "mac_roman", "mac_romanian",
    "mac_turkish",
)


def _detect_encoding(data: bytes) -> str | None:
    """The encoding charset-normalizer finds for bytes that are not UTF-8 (a Python codec name), or None.

    Single-byte code pages often tie on its measures (French Latin-1 text decodes without "mess" as cp1250,
    cp1252 and cp1257 alike, and its first pick is cp1250: "très" as "trčs"); among the candidates as good as
    its best, one that decodes the bytes as Windows-1252 does is taken as cp1252.
    """
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data, cp_exclusion=list(_RARE_CODE_PAGES)))
    if not matches:
        return None
    best = matches[0]
    tied = [m for m in matches if m.chaos <= best.chaos and m.coherence >= best.coherence]
    if any("cp1252" in m.could_be_from_charset for m in tied):
        return "cp1252"
    return best.encoding


def _text_title(text: str, suffix: str) -> str:
    """The first non-empty line, stripped (for Markdown, without its heading marks; for reST, not an
    over- or underline of "=" or "-" and the like)."""
    for line in text.splitlines():
        title = line.strip()
        if not title:
            continue
        if suffix == ".md" and title.startswith("#"):
            title = title.lstrip("#").strip() or title
        if suffix == ".rst" and _RST_ADORNMENT.fullmatch(title):
            continue
        return title[:_TITLE_CHARS]
    return ""


_RST_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1{2,}")  # a line of one repeated punctuation character


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


def _extract_docx(path: Path, data: bytes) -> tuple[str, str]:
    import io

    try:
        from docx import Document as open_docx

        word = open_docx(io.BytesIO(data))
        paragraphs = [p.text for p in word.paragraphs if p.text.strip()]
        title = (word.core_properties.title or "").strip()
    except Exception as exc:  # noqa: BLE001 - a damaged or mislabelled file raises zip, XML or key errors
        raise DocumentError(str(path), f"cannot read DOCX: {type(exc).__name__}: {exc}") from None
    if not paragraphs:
        raise DocumentError(str(path), "no text in DOCX (no non-empty paragraph in its body)")
    text = "\n\n".join(paragraphs)
    return text, (title or _text_title(text, ".txt"))[:_TITLE_CHARS]


def load_documents(
    paths: str | Path | Sequence[str | Path],
    *,
    max_file_mb: float = 50.0,
    on_error: str = "skip",
    report: Callable[[DocumentError], None] | None = None,
    exclude: str | Sequence[str] = (),
    read_qaignore: bool = True,
) -> list[Document]:
    """Load every supported file under ``paths`` (see :func:`qa.discovery.scan_document_files`).

    Args:
        paths: a file or folder, or several.
        max_file_mb: larger files are refused without being read.
        on_error: ``"skip"``: a bad file is logged, passed to ``report`` and skipped;
            ``"stop"``: its DocumentError is raised.
        report: called with the DocumentError of each skipped file, and of each file of a format
            that is not read inside a folder (those never stop the run).
        exclude: exclusion rules in gitignore syntax, on top of the defaults and ``.qaignore``.
        read_qaignore: apply the rules of a ``.qaignore`` file in each folder given.

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

    scan = scan_document_files(
        [paths] if isinstance(paths, (str, Path)) else paths, on_clash=skip if on_error == "skip" else None,
        exclude=exclude, read_qaignore=read_qaignore,
    )
    for err in scan.unsupported:
        log.info("skipped %s", err)
        if report is not None:
            report(err)
    files = scan.files
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
