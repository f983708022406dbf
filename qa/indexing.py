"""Write the index: read, chunk, embed and store documents incrementally; remove them; report status."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from qa import factory
from qa.config import Settings
from qa.errors import DocumentError, EmptyCorpusError, QAError
from qa.schema import Document

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What one indexing run did."""

    index_dir: str
    documents: int  # documents in the index after the run
    passages: int  # passages in the index after the run
    added: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[str, ...]  # "path: reason" of each file not indexed: unreadable, unsupported format, missing
    embedded_passages: int
    seconds: float
    encodings: tuple[str, ...] = ()  # "path: read as cp1252" of each text file that is not UTF-8
    excluded: tuple[str, ...] = ()  # files and folders (ending in "/") left out by an exclusion rule
    dense_index: str = "exact (flat)"  # the dense search the index does now (qa.store.vectors.describe_index)


def text_digest(text: str) -> str:
    """Content hash that decides whether a document changed."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def follow_index(settings: Settings, index_dir: str | Path, *, given: Collection[str] = ()) -> Settings:
    """``settings`` with the embedder and chunking an existing index was built with, except those named in
    ``given`` (defaults < index manifest < explicit): adding to an index built with ``--chunk-size 200``
    keeps chunking at 200. Unchanged when there is no readable index.

    Raises:
        ValueError: the index's chunking and an explicit one do not combine (overlap >= size).
    """
    from qa.config import PACKAGED_EMBEDDER
    from qa.store import peek_index_manifest

    manifest = peek_index_manifest(index_dir)
    if manifest is None:
        return settings
    changes: dict = {}
    if "embedder" not in given:
        changes["embedder"] = None if manifest.embedder == PACKAGED_EMBEDDER else manifest.embedder
    if "chunk_size" not in given:
        changes["chunk_size"] = manifest.chunk_size
    if "chunk_overlap" not in given:
        changes["chunk_overlap"] = manifest.chunk_overlap
    try:
        return replace(settings, **changes)
    except ValueError as exc:
        raise ValueError(
            f"{exc} (the index in {index_dir} was chunked with size {manifest.chunk_size} and overlap "
            f"{manifest.chunk_overlap}; give both --chunk-size and --overlap)"
        ) from None


def index_status(index_dir: str | Path, *, documents: bool = False) -> dict:
    """What an index holds and how it was built, as plain values (for `qa status`); ``documents`` adds
    ``document_list``, one entry per document (doc_id, title, source, chars, passages)."""
    from dataclasses import asdict

    from qa.store import open_index

    with open_index(index_dir) as store:
        info = asdict(store.stats())
        if documents:
            info["document_list"] = store.document_summaries()
    info["documents"], info["passages"] = info.pop("documents"), info.pop("chunks")
    info["size_on_disk_mb"] = round((info.pop("sqlite_bytes") + info.pop("faiss_bytes")) / 1e6, 2)
    return info


def build_index(
    paths: Sequence[str | Path],
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    prune: bool = False,
    rebuild: bool = False,
    wait: float = 0.0,
    progress: Progress | None = None,
    on_skip: Callable[[DocumentError], None] | None = None,
    embedder=None,
    exclude: str | Sequence[str] = (),
    read_qaignore: bool = True,
    ray: bool = False,
    ray_address: str | None = None,
) -> IndexReport:
    """Index files and folders incrementally: only new or changed documents are embedded.

    A file that cannot be read (empty, binary, in no encoding that fits, too large) or a path
    that does not exist is reported through ``on_skip`` and skipped, and the rest is indexed,
    unless ``settings.on_error`` is "stop". Files of other formats inside a folder are reported
    the same way but never stop the run; excluded files and folders are only counted (see
    :func:`qa.discovery.scan_document_files` for the rules).

    Args:
        paths: files or folders of .txt, .md, .rst, .html, .pdf and .docx documents (also gzip-compressed;
            README, NEWS ... without a suffix as text: :func:`qa.discovery.document_format`).
        index_dir: the index folder (default: ``settings.index_dir``).
        settings: chunking, models, and how to treat unreadable files.
        prune: also remove indexed documents whose source file is gone.
        rebuild: drop what the index holds and build it from ``paths`` alone; also the way out
            of an index built with another embedder or chunking, or a damaged one.
        wait: seconds to wait for another writer to finish; 0 raises IndexLockedError at once.
        progress: called as ``progress(stage, done, total)``.
        on_skip: called with each file that is not indexed (not with excluded ones).
        embedder: an Embedder to use instead of the one the settings name (tests).
        exclude: exclusion rules in gitignore syntax (``"*.log"``, ``"drafts/"``), relative to each
            folder given, on top of the default tool folders and each folder's ``.qaignore``.
        read_qaignore: apply the rules of a ``.qaignore`` file in each folder given.
        ray: read, chunk and embed on Ray Data (:mod:`qa.ray_index`): a local Ray, or the cluster at
            ``ray_address``; the index is written here, as without it.

    Returns:
        What was added, updated, left alone, removed, skipped (with reasons), excluded, and which
        text files were not UTF-8.

    Raises:
        DocumentError: none of ``paths`` exists, a ``.qaignore`` is unreadable or invalid, or a file
            is unreadable and on_error is "stop".
        EmptyCorpusError: nothing readable to index (an index is never emptied by mistake).
        IndexLockedError: another process is writing to the index.
        ValueError: a rule of ``exclude`` is not a valid pattern.
    """
    from qa.discovery import SUPPORTED_SUFFIXES, scan_document_files
    from qa.loader import read_document

    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    skipped: list[str] = []
    failed = 0  # skipped files that could not be read (not those of other formats)

    def skip(err: DocumentError, *, unsupported: bool = False) -> None:
        nonlocal failed
        if settings.on_error == "stop" and not unsupported:
            raise err
        failed += not unsupported
        skipped.append(str(err))
        if on_skip is not None:
            on_skip(err)

    missing = [p for p in paths if not Path(p).exists()]
    if missing and len(missing) == len(paths):
        raise DocumentError(str(missing[0]), "no such file or directory")
    for p in missing:
        skip(DocumentError(str(p), "no such file or directory"))
    scan = scan_document_files(
        [p for p in paths if p not in missing], on_clash=skip, exclude=exclude, read_qaignore=read_qaignore
    )
    for err in scan.unsupported:
        skip(err, unsupported=True)
    docs: list[Document] = []
    encodings: list[str] = []
    prepared = None
    if ray and scan.files:
        from qa.ray_index import embed_files_with_ray

        location = index_dir if index_dir is not None else settings.index_dir
        result = embed_files_with_ray(scan.files, settings, known={} if rebuild else _known_hashes(location),
                                      address=ray_address, progress=progress)
        for err in result.errors:
            skip(err)
        docs, prepared, encodings = list(result.documents), result.prepared, list(result.encodings)
    for i, (path, doc_id) in enumerate(() if ray else scan.files):
        try:
            loaded = read_document(path, doc_id, max_file_mb=settings.max_file_mb)
        except DocumentError as err:
            skip(err)
        else:
            docs.append(loaded.document)
            if loaded.encoding not in (None, "utf-8"):
                encodings.append(f"{path}: read as {loaded.encoding}")
        if progress:
            progress("read", i + 1, len(scan.files))
    excluded = tuple(f"{p}/" if p.is_dir() else str(p) for p in scan.excluded)
    if not docs and not failed:
        others = f"; {len(scan.unsupported)} file(s) of other formats" if scan.unsupported else ""
        others += f"; {len(excluded)} excluded" if excluded else ""
        raise EmptyCorpusError(
            f"no {', '.join(SUPPORTED_SUFFIXES)} files in {', '.join(map(str, paths))}{others}"
        )
    report = index_documents(
        docs, index_dir, settings=settings, prune=prune, rebuild=rebuild, wait=wait, progress=progress,
        embedder=embedder, prepared=prepared,
    )
    return replace(report, skipped=tuple(skipped), seconds=time.perf_counter() - t0, encodings=tuple(encodings),
                   excluded=excluded)


def index_documents(
    docs: Sequence[Document],
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    prune: bool = False,
    rebuild: bool = False,
    wait: float = 0.0,
    progress: Progress | None = None,
    embedder=None,
    prepared: dict | None = None,
) -> IndexReport:
    """Add or update documents in an index; unchanged ones cost nothing.

    ``prune`` removes indexed documents whose ``source`` file no longer exists. ``rebuild``
    embeds every document again and replaces the whole index with them, with these settings, in one
    atomic change (a damaged index is deleted and created afresh once the new vectors are ready).
    ``wait`` is how many seconds to wait for another writer before IndexLockedError. ``prepared`` holds
    ``{doc_id: (chunks, vectors)}`` made elsewhere (Ray): those documents are not chunked or embedded again.
    """
    from qa.store import DB_NAME, PassageStore, is_milvus_location

    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    location = index_dir if index_dir is not None else settings.index_dir
    milvus = is_milvus_location(location)
    index_dir = Path(location)
    embedder = embedder or factory.make_embedder(settings)
    spec = {
        "embedder": embedder.model_name,
        "dim": embedder.dim,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "lock_timeout": wait,
    }
    if milvus:
        from qa.store.milvus import MilvusStore

        index_dir = str(location)  # a URI: not a path to normalize
        exists = MilvusStore.peek_manifest(index_dir) is not None
    else:
        exists = (index_dir / DB_NAME).is_file()
    if rebuild or not exists:  # checked before an index is created
        if not docs:
            raise EmptyCorpusError("no readable documents to index")
        _check_chunk_size(settings.chunk_size, embedder)
    # The write lock is held from here to the end, so a second writer fails (or waits) at once. A damaged
    # index being rebuilt cannot be opened: it is only locked.
    if milvus:
        store = (MilvusStore.open_for_rebuild(index_dir, **spec) if rebuild
                 else MilvusStore.open_or_create(index_dir, **spec))
    else:
        store = _open_for_rebuild(index_dir, spec) if rebuild else PassageStore.open_or_create(index_dir, **spec)
    lock = PassageStore.write_lock(index_dir, lock_timeout=wait) if store is None else None
    try:
        known = store.document_hashes() if store is not None else {}
        if not docs and (rebuild or not known):
            raise EmptyCorpusError("no readable documents to index")
        todo = list(docs) if rebuild else [d for d in docs if known.get(d.doc_id) != text_digest(d.text)]
        prepared = prepared or {}
        chunked = _chunk_documents([d for d in todo if d.doc_id not in prepared], embedder, settings, progress)
        own = {d.doc_id: chunks for d, chunks in chunked}
        chunked = [(d, prepared[d.doc_id][0] if d.doc_id in prepared else own[d.doc_id]) for d in todo]
        seen = {d.doc_id for d in docs}
        if rebuild:
            removed = [d for d in known if d not in seen]
        elif prune:
            removed = [d for d in known if d not in seen and _source_gone(store.get_document(d).source)]
        else:
            removed = []
        built_with = {k: spec[k] for k in ("embedder", "dim", "chunk_size", "chunk_overlap")} if rebuild else None
        total = sum(len(chunks) for _, chunks in chunked)
        embedded = 0
        # One atomic change per batch: a run stopped part-way keeps what it committed, and the next run finds
        # those documents unchanged and embeds the rest. The first batch also carries the removals (and, for a
        # rebuild, the reset of the index to the new embedder and chunking).
        for n, batch in enumerate(_batches(chunked, settings.index_batch) or [[]]):
            upserts = _embed_batch(batch, embedder, progress, embedded, total, prepared)
            embedded += sum(len(chunks) for _, chunks in batch)
            if store is None:
                store, lock = PassageStore.create(index_dir, overwrite=True, lock=lock, **spec), None
            if n == 0 and built_with is not None:
                store.apply(upserts, [], replace_all=built_with)
            elif upserts or (n == 0 and removed):
                store.apply(upserts, removed if n == 0 else [])
        stats = store.stats()
    finally:
        if store is not None:
            store.close()
        elif lock is not None:
            lock.release()
    todo_ids = {d.doc_id for d in todo}
    return IndexReport(
        index_dir=str(index_dir),
        documents=stats.documents,
        passages=stats.chunks,
        added=tuple(d.doc_id for d in todo if d.doc_id not in known),
        updated=tuple(d.doc_id for d in todo if d.doc_id in known),
        unchanged=tuple(d.doc_id for d in docs if d.doc_id not in todo_ids),
        removed=tuple(removed),
        skipped=(),
        embedded_passages=embedded,
        seconds=time.perf_counter() - t0,
        dense_index=stats.dense_index,
    )


def _open_for_rebuild(index_dir: Path, spec: dict):
    """The index open for writing whatever it was built with (created if missing); None when it is damaged
    or of another format version, so that it must be deleted and created afresh."""
    from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
    from qa.store import PassageStore

    try:
        return PassageStore.open(index_dir, readonly=False, lock_timeout=spec["lock_timeout"])
    except IndexNotFoundError:
        return PassageStore.open_or_create(index_dir, **spec)
    except (IndexMismatchError, IndexCorruptError) as exc:
        log.info("rebuilding %s from scratch: %s", index_dir, exc)
        return None


def _chunk_documents(docs: Sequence[Document], embedder, settings: Settings, progress: Progress | None) -> list:
    """``(document, chunks)`` of each document, in order."""
    from qa.chunking import chunk_document

    chunked = []
    for i, doc in enumerate(docs):
        chunks = chunk_document(
            doc, size=settings.chunk_size, overlap=settings.chunk_overlap, count_tokens=embedder.count_tokens
        )
        chunked.append((doc, chunks))
        if progress:
            progress("chunk", i + 1, len(docs))
    return chunked


def _batches(chunked: list, size: int) -> list[list]:
    """Consecutive groups of ``(document, chunks)`` of about ``size`` passages; a document is never split."""
    batches: list[list] = []
    current: list = []
    passages = 0
    for item in chunked:
        current.append(item)
        passages += len(item[1])
        if passages >= size:
            batches.append(current)
            current, passages = [], 0
    if current:
        batches.append(current)
    return batches


def _embed_batch(
    batch: list, embedder, progress: Progress | None, done: int, total: int, prepared: dict | None = None
) -> list:
    """Embed a batch's passages as their model views: ``(document, chunks, vectors)`` for PassageStore.apply;
    documents in ``prepared`` come with their vectors."""
    from qa.modeltext import model_view

    prepared = prepared or {}
    mine = [(doc, chunks) for doc, chunks in batch if doc.doc_id not in prepared]
    # the embedder reads each passage's view (no markup, no hard wraps), as BM25 and the reader do
    texts = [model_view(c.text, doc.source).text for doc, chunks in mine for c in chunks]
    vectors = None
    if texts:
        on_embed = (lambda n: progress("embed", done + n, total)) if progress else None
        vectors = embedder.encode_passages(texts, progress=on_embed)
    upserts, pos = [], 0
    for doc, chunks in batch:
        if doc.doc_id in prepared:
            upserts.append((doc, chunks, prepared[doc.doc_id][1]))
        elif chunks:
            upserts.append((doc, chunks, vectors[pos : pos + len(chunks)]))
            pos += len(chunks)
    return upserts


def _known_hashes(location) -> dict[str, str]:
    """``{doc_id: sha256}`` of the index at ``location``; {} when there is none yet."""
    from qa.errors import IndexNotFoundError
    from qa.store import open_index

    try:
        with open_index(location) as store:
            return store.document_hashes()
    except (IndexNotFoundError, QAError):
        return {}


def _check_chunk_size(chunk_size: int, embedder) -> None:
    """QAError when passages of ``chunk_size`` tokens are longer than the embedder reads (loads the model)."""
    limit = getattr(embedder, "max_tokens", None)
    if limit is not None and chunk_size > limit - 2:
        raise QAError(
            f"chunk size {chunk_size} is longer than embedder {embedder.model_name} reads ({limit} tokens, "
            f"2 of them its own markers): passages would be cut short; use --chunk-size {limit - 2} or less"
        )


def _source_gone(source: str) -> bool:
    """True when a document came from a file that no longer exists (documents without a file stay)."""
    return bool(source) and not Path(source).exists()


def remove_documents(
    doc_ids: Sequence[str], index_dir: str | Path | None = None, *, wait: float = 0.0
) -> list[str]:
    """Remove documents from an index in one atomic change; returns the ids that were there.

    Unknown ids are ignored. ``wait`` is how many seconds to wait for another writer.
    """
    from qa.store import open_index

    index_dir = index_dir if index_dir is not None else Settings.from_env().index_dir
    with open_index(index_dir, readonly=False, lock_timeout=wait) as store:
        known = store.document_hashes()
        present = [d for d in dict.fromkeys(doc_ids) if d in known]
        if present:
            store.apply([], present)
    return present
