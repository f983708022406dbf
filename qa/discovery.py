"""Which files under some paths are documents: folders walked, hidden files and tool folders skipped, the
rules of .qaignore files and --exclude (gitignore syntax) applied, a doc_id given to each file."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.errors import DocumentError

TEXT_SUFFIXES = (".txt", ".md", ".rst")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
DOCX_SUFFIXES = (".docx",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES + DOCX_SUFFIXES
#: A gzip-compressed document (``FAQ.txt.gz``, ``README.md.gz``, as /usr/share/doc holds them) is read as
#: the file inside it.
GZIP_SUFFIX = ".gz"
#: Plain-text files named by convention without a suffix (``README``, ``NEWS.gz``), read as ``.txt``.
PLAIN_TEXT_NAMES = frozenset({"readme", "faq", "news", "install", "changes", "changelog", "hacking", "todo",
                              "bugs", "contributing"})

# Folders that hold tools' files, not documents: left out of every folder walk, in gitignore syntax (a
# ".qaignore" line "!build/" brings one back). Hidden folders (".git", ".venv", ...) are skipped anyway.
DEFAULT_EXCLUDES = (
    "node_modules/", ".git/", "__pycache__/", ".venv/", "venv/", ".tox/", "dist/", "build/", ".mypy_cache/",
    ".pytest_cache/",
)
IGNORE_FILE = ".qaignore"


@dataclass(frozen=True, slots=True)
class FileScan:
    """The document files found under some paths, and the files and folders left out."""

    files: tuple[tuple[Path, str], ...]  # (path, doc_id) in doc_id order
    unsupported: tuple[DocumentError, ...]  # files inside folders whose format is not read, in walk order
    excluded: tuple[Path, ...]  # files and folders left out by an exclusion rule (a folder once, not its files)


def _inner_name(path: Path) -> tuple[str, bool]:
    """The file name without a ``.gz`` suffix, and whether it had one."""
    name = path.name
    compressed = name.lower().endswith(GZIP_SUFFIX) and len(name) > len(GZIP_SUFFIX)
    return (name[: -len(GZIP_SUFFIX)] if compressed else name), compressed


def document_format(path: Path) -> tuple[str, bool] | None:
    """How a file is read: (the suffix of its format, whether it is gzip-compressed), or None when it is of no
    supported format. ``guide.md`` -> (".md", False); ``FAQ.txt.gz`` -> (".txt", True); ``README`` and
    ``NEWS.gz`` -> (".txt", False / True); ``README.Debian`` and ``data.csv.gz`` -> None."""
    name, compressed = _inner_name(path)
    suffix = Path(name).suffix.lower()
    if suffix in SUPPORTED_SUFFIXES:
        return suffix, compressed
    if not suffix and name.lower() in PLAIN_TEXT_NAMES:
        return ".txt", compressed
    return None


def document_stem(path: Path) -> Path:
    """``path`` without the suffixes of its format: ``docs/FAQ.txt.gz`` -> ``docs/FAQ``, ``a/guide.md`` ->
    ``a/guide``; a file of no supported format loses its last suffix only."""
    if document_format(path) is None:
        return path.with_suffix("")
    return path.with_name(Path(_inner_name(path)[0]).stem)


def unsupported_reason(path: Path) -> str:
    """Why a file is not read as a document: its suffix."""
    name, compressed = _inner_name(path)
    suffix = Path(name).suffix.lower()
    if compressed:
        return (f"unsupported format {suffix + GZIP_SUFFIX!r}" if suffix
                else "unsupported format (a .gz of no known kind)")
    return f"unsupported format {suffix!r}" if suffix else "unsupported format (no file name suffix)"


def find_document_files(
    paths: Sequence[str | Path],
    *,
    on_clash: Callable[[DocumentError], None] | None = None,
    exclude: str | Sequence[str] = (),
    read_qaignore: bool = True,
    default_excludes: Sequence[str] = DEFAULT_EXCLUDES,
) -> list[tuple[Path, str]]:
    """Expand files and folders into ``(path, doc_id)`` pairs, sorted by doc_id.

    The files of :func:`scan_document_files`, which also says which files and folders were left out.
    """
    scan = scan_document_files(
        paths, on_clash=on_clash, exclude=exclude, read_qaignore=read_qaignore, default_excludes=default_excludes
    )
    return list(scan.files)


def scan_document_files(
    paths: Sequence[str | Path],
    *,
    on_clash: Callable[[DocumentError], None] | None = None,
    exclude: str | Sequence[str] = (),
    read_qaignore: bool = True,
    default_excludes: Sequence[str] = DEFAULT_EXCLUDES,
) -> FileScan:
    """Expand files and folders into the document files they hold, and what they leave out.

    Folders are walked recursively. Hidden files and folders (names starting with ".") are
    skipped; so are files and folders matching the exclusion rules, in gitignore syntax and
    relative to the folder given: ``default_excludes`` (``node_modules/``, ``build/``, ...),
    then the lines of a ``.qaignore`` file in that folder, then ``exclude`` (a later ``!rule``
    takes an earlier one back); and files whose format is not read, which are listed in
    ``unsupported`` (see :func:`document_format` for what is read). A file inside a folder gets the doc_id of
    its path relative to that folder, without the suffixes of its format, with "/" separators
    (``seeds/news/a.txt`` given ``seeds`` is ``news/a``; ``FAQ.txt.gz`` is ``FAQ``); a file named directly
    gets its stem and is kept whatever its suffix and the
    rules, so that loading it reports an unsupported format. A file reached twice (a folder
    and a file inside it) is kept once.

    Args:
        paths: files and folders.
        on_clash: called with the DocumentError of a file whose doc_id an earlier file already has
            (``notes.md`` beside ``notes.txt``), which is then left out; None raises that error instead.
        exclude: more rules (``"*.log"``, ``"drafts/"``, ``"archive/2019/**"``).
        read_qaignore: apply the rules of a ``.qaignore`` file in each folder given.
        default_excludes: the rules applied first; ``()`` walks tool folders too.

    Returns:
        The files in doc_id order, the files of unsupported formats, and the excluded files and folders.

    Raises:
        DocumentError: a path does not exist, a ``.qaignore`` file cannot be read or holds an invalid
            rule, or two files map to the same doc_id and ``on_clash`` is None.
        ValueError: a rule of ``exclude`` or ``default_excludes`` is invalid.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    defaults = check_rules(default_excludes, "default_excludes")
    extra = check_rules(exclude, "exclude")
    found: dict[str, Path] = {}
    seen: set[Path] = set()
    unsupported: list[DocumentError] = []
    excluded: list[Path] = []
    for arg in paths:
        root = Path(arg)
        if not root.exists():
            raise DocumentError(str(root), "no such file or directory")
        if root.is_dir():
            own = _qaignore_rules(root / IGNORE_FILE) if read_qaignore else []
            files = _walk(root, _match_rules([*defaults, *own, *extra]), unsupported, excluded)
            pairs = [(f, document_stem(f.relative_to(root)).as_posix()) for f in files]
        else:
            pairs = [(root, document_stem(Path(root.name)).as_posix())]
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
    return FileScan(
        files=tuple((found[doc_id], doc_id) for doc_id in sorted(found)),
        unsupported=tuple(unsupported),
        excluded=tuple(excluded),
    )


def _walk(
    root: Path, is_excluded: Callable[[str], bool], unsupported: list[DocumentError], excluded: list[Path]
) -> list[Path]:
    """Supported, non-hidden, not excluded files under ``root``, in sorted order; files of other formats are
    added to ``unsupported`` and excluded files and folders (not walked) to ``excluded``."""
    files: list[Path] = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        rel = here.relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        kept = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            if is_excluded(f"{prefix}{d}/"):
                excluded.append(here / d)
            else:
                kept.append(d)
        dirs[:] = kept
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = here / name
            if is_excluded(prefix + name):
                excluded.append(path)
            elif document_format(path) is not None:
                files.append(path)
            else:
                unsupported.append(DocumentError(str(path), unsupported_reason(path)))
    return files


def check_rules(rules: str | Sequence[str], name: str = "exclude") -> list[str]:
    """``rules`` (one pattern or several) as a list, each one checked to be a valid gitignore pattern.

    Raises:
        ValueError: a rule is invalid (``"!"`` alone, a trailing backslash); the message names it and ``name``.
    """
    rules = [rules] if isinstance(rules, str) else list(rules)
    for rule in rules:
        if (problem := _rule_problem(rule)) is not None:
            raise ValueError(f"invalid {name} pattern {rule!r}: {problem}")
    return rules


def _rule_problem(rule: str) -> str | None:
    import pathspec

    try:
        pathspec.GitIgnoreSpec.from_lines([rule])
    except ValueError as exc:
        return str(exc)
    return None


def _qaignore_rules(path: Path) -> list[str]:
    """The lines of a ``.qaignore`` file (gitignore syntax), or none when there is no such file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DocumentError(str(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DocumentError(str(path), f"not valid UTF-8 at byte offset {exc.start}") from None
    for n, line in enumerate(lines, start=1):
        if (problem := _rule_problem(line)) is not None:
            raise DocumentError(str(path), f"line {n}: invalid pattern {line!r} ({problem})")
    return lines


def _match_rules(rules: Sequence[str]) -> Callable[[str], bool]:
    """Whether a path relative to the folder walked (a folder's ending in "/") is excluded by ``rules``."""
    import pathspec

    spec = pathspec.GitIgnoreSpec.from_lines(rules)
    return spec.match_file
