"""The manifest of an index in Milvus: one row per key in the ``qa_manifest`` collection, JSON values.

Milvus 2.5 can lose an upsert, or leave a row out of a query for a moment, under load (milvus-io/milvus issues
38947, 42147, 43315; seen here at 1M passages with Milvus Lite 2.5.1). A write is read back and written again when
a key did not keep its value; a read that misses keys is read again; both give up loudly after
:data:`MANIFEST_TRIES` tries.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError, QAError
from qa.store.manifest import FORMAT_VERSION, Manifest, manifest_from_raw
from qa.store.milvus_schema import DUMMY, PREFIX, ids_filter

log = logging.getLogger(__name__)

MANIFEST_TRIES = 5  # a manifest write that does not read back, or a read that misses keys, is tried this often
COLLECTION = PREFIX + "manifest"


def raw_manifest(client: Any) -> dict[str, Any]:
    """Every manifest key and its decoded value, as one query returns them."""
    rows = client.query(COLLECTION, filter='key != ""', output_fields=["key", "value"], limit=16_384)
    return {r["key"]: json.loads(r["value"]) for r in rows}


def read_manifest(client: Any, uri: str) -> Manifest:
    """The manifest of the index at ``uri``.

    Raises:
        IndexNotFoundError: the database holds no index.
        IndexMismatchError: another format version.
        IndexCorruptError: keys still missing after :data:`MANIFEST_TRIES` reads.
    """
    if not client.has_collection(COLLECTION):
        raise IndexNotFoundError(f"no index at {uri}: build one with `qa index PATH --index-uri {uri}`")
    hint = f"rebuild it with `qa index --rebuild PATH --index-uri {uri}`"
    for attempt in range(MANIFEST_TRIES):
        raw = raw_manifest(client)
        try:
            return manifest_from_raw(raw, uri, uri, hint)
        except (IndexCorruptError, IndexMismatchError):
            if attempt == MANIFEST_TRIES - 1 or raw.get("format_version") not in (None, FORMAT_VERSION):
                raise  # the last read, or another format version: nothing a second read changes
            log.warning("%s: the manifest read back incomplete (try %d); reading again", uri, attempt + 1)
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def write_manifest(client: Any, uri: str, values: dict[str, Any]) -> None:
    """Upsert manifest keys and read them back; a key that did not keep its value is written again.

    Raises:
        QAError: a key still not kept after :data:`MANIFEST_TRIES` writes (the server is losing upserts).
    """
    wanted = {k: json.dumps(v, ensure_ascii=False) for k, v in values.items()}
    todo = dict(wanted)
    for attempt in range(MANIFEST_TRIES):
        client.upsert(COLLECTION, [{"key": k, "value": v, "dummy": DUMMY} for k, v in todo.items()])
        found = {r["key"]: r["value"] for r in client.query(
            COLLECTION, filter=ids_filter("key", sorted(wanted)), output_fields=["key", "value"])}
        todo = {k: v for k, v in wanted.items() if found.get(k) != v}
        if not todo:
            return
        log.warning("%s: manifest key(s) %s did not read back after writing them (try %d); writing again",
                    uri, ", ".join(sorted(todo)), attempt + 1)
        time.sleep(0.1 * (attempt + 1))
    raise QAError(f"{uri}: Milvus did not keep the manifest key(s) {', '.join(sorted(todo))} after "
                  f"{MANIFEST_TRIES} writes; the server is losing upserts, check its logs")
