"""`qa` against a Milvus server process on 127.0.0.1 (milvus-lite's gRPC server), shared by separate processes.

Marked ``milvus_server``: excluded from the default run, run by `.ci/run` (`python -m pytest -m milvus_server`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from test_cli_index import cli  # noqa: E402

pytestmark = pytest.mark.milvus_server
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def milvus_server(tmp_path):
    """The URI of a Milvus server process that lives for one test (127.0.0.1: the offline guard allows it)."""
    port = free_port()
    log = (tmp_path / "milvus.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "data"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail(f"the Milvus server did not start: {(tmp_path / 'milvus.log').read_text()}")
            time.sleep(0.2)
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def qa_process(*args: str) -> subprocess.CompletedProcess:
    """`qa ARGS` in a process of its own (another client of the same server)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "qa", *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


def test_processes_share_one_index_on_a_milvus_server(milvus_server, tmp_path):
    uri = milvus_server
    cli("index", REPO / "seeds", "--index-uri", uri)  # this process writes ...
    asked = qa_process("ask", "When was ISIS-K formed?", "--index-uri", uri, "--json")  # ... another one reads
    assert asked.returncode == 0, asked.stderr
    best = json.loads(asked.stdout)["answers"][0]
    assert best["text"] == "2015"
    shown = json.loads(qa_process("show", best["doc_id"], "--index-uri", uri, "--json").stdout)["text"]
    assert shown[best["start"] : best["end"]] == "2015"

    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "louvre.txt").write_text("The Louvre opened in 1793 in Paris.", encoding="utf-8")
    added = qa_process("index", str(tmp_path / "more"), "--index-uri", uri)  # a second writer, after the first
    assert added.returncode == 0, added.stderr
    info = json.loads(cli("status", "--index-uri", uri, "--json").stdout)
    assert (info["documents"], info["embedder"]) == (2, "sentence-transformers/all-MiniLM-L6-v2")
    cli("remove", "louvre", "--index-uri", uri)
    assert json.loads(cli("status", "--index-uri", uri, "--json").stdout)["documents"] == 1


def test_an_unreachable_server_is_one_line(tmp_path):
    result = cli("status", "--index-uri", f"http://127.0.0.1:{free_port()}", code=1)
    assert result.stderr.startswith("error: cannot connect to Milvus at http://127.0.0.1:")
