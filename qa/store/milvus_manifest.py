"""The manifest of an index in Milvus, kept append-only in the ``qa_manifest`` collection.

Each write inserts a new *version* of the keys it sets (a row ``key``, ``seq``, JSON ``value``, primary key
``key@seq``); a read takes the version with the highest ``seq`` of each key; versions older than a key's newest
are deleted after each write. Nothing is ever upserted: Milvus 2.5 loses upserts under load (an upsert is a
delete and an insert of the same primary key, and the delete can win: milvus-io/milvus issues 38947, 42147,
43315; seen here at 1M passages with Milvus Lite 2.5.1, where one key did not keep its value through 5 upserts).
A new version never shares a primary key with an old one, so a delete of old versions cannot take it away.

A write is still read back and made again (as a newer version) when a key did not keep its value, and a read that
misses keys is read again; both give up loudly after :data:`MANIFEST_TRIES` tries.
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
ROWS_LIMIT = 16_384  # versions read at once: a few per key, since older ones are deleted after each write


def _versions(client: Any, uri: str, expr: str = 'key != ""') -> list[dict[str, Any]]:
    """The manifest rows matching ``expr`` (every version of each key).

    Raises:
        IndexMismatchError: the manifest is one qa kept before it was versioned (rows without ``seq``).
    """
    older = IndexMismatchError(f"the index at {uri} was built by an older qa (its manifest is not versioned); "
                               f"rebuild it with `qa index --rebuild PATH --index-uri {uri}`")
    try:
        rows = client.query(COLLECTION, filter=expr, output_fields=["key", "seq", "value"], limit=ROWS_LIMIT)
    except Exception as exc:  # a server may refuse the unknown field outright
        fields = {f.get("name") for f in client.describe_collection(COLLECTION).get("fields", [])}
        if "seq" not in fields:
            raise older from exc
        raise
    if any("seq" not in r for r in rows):  # Milvus Lite 3 leaves the unknown field out of the rows
        raise older
    return rows


def _newest(rows: list[dict[str, Any]]) -> dict[str, tuple[int, str]]:
    """key -> (seq, raw JSON value) of the newest version of each key."""
    newest: dict[str, tuple[int, str]] = {}
    for r in rows:
        seq = int(r["seq"])
        if r["key"] not in newest or seq > newest[r["key"]][0]:
            newest[r["key"]] = (seq, r["value"])
    return newest


def raw_manifest(client: Any, uri: str) -> dict[str, Any]:
    """Every manifest key and its decoded value (the newest version of each), as one query returns them."""
    return {k: json.loads(v) for k, (_, v) in _newest(_versions(client, uri)).items()}


def read_manifest(client: Any, uri: str) -> Manifest:
    """The manifest of the index at ``uri``.

    Raises:
        IndexNotFoundError: the database holds no index.
        IndexMismatchError: another format version, or a manifest of a qa before versioned manifests.
        IndexCorruptError: keys still missing after :data:`MANIFEST_TRIES` reads.
    """
    if not client.has_collection(COLLECTION):
        raise IndexNotFoundError(f"no index at {uri}: build one with `qa index PATH --index-uri {uri}`")
    hint = f"rebuild it with `qa index --rebuild PATH --index-uri {uri}`"
    for attempt in range(MANIFEST_TRIES):
        raw = raw_manifest(client, uri)
        try:
            return manifest_from_raw(raw, uri, uri, hint)
        except (IndexCorruptError, IndexMismatchError):
            if attempt == MANIFEST_TRIES - 1 or raw.get("format_version") not in (None, FORMAT_VERSION):
                raise  # the last read, or another format version: nothing a second read changes
            log.warning("%s: the manifest read back incomplete (try %d); reading again", uri, attempt + 1)
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def write_manifest(client: Any, uri: str, values: dict[str, Any]) -> None:
    """Set manifest keys: insert a new version of each, read them back, then delete their older versions.

    Raises:
        QAError: a key still not kept after :data:`MANIFEST_TRIES` writes (the server is losing inserts).
    """
    wanted = {k: json.dumps(v, ensure_ascii=False) for k, v in values.items()}
    keys_expr = ids_filter("key", sorted(wanted))
    todo = dict(wanted)
    for attempt in range(MANIFEST_TRIES):
        seq = 1 + max((int(r["seq"]) for r in _versions(client, uri)), default=0)
        client.insert(COLLECTION, [{"version_id": f"{k}@{seq}", "key": k, "seq": seq, "value": v, "dummy": DUMMY}
                                   for k, v in todo.items()])
        newest = _newest(_versions(client, uri, keys_expr))
        todo = {k: v for k, v in wanted.items() if newest.get(k, (0, None))[1] != v}
        if not todo:
            keep = [f"{k}@{newest[k][0]}" for k in wanted]
            client.delete(COLLECTION, filter=f"{keys_expr} and {ids_filter('version_id', keep, negate=True)}")
            return
        log.warning("%s: manifest key(s) %s did not read back after writing them (try %d); writing again",
                    uri, ", ".join(sorted(todo)), attempt + 1)
        time.sleep(0.1 * (attempt + 1))
    raise QAError(f"{uri}: Milvus did not keep the manifest key(s) {', '.join(sorted(todo))} after "
                  f"{MANIFEST_TRIES} writes; the server is losing inserts, check its logs")
