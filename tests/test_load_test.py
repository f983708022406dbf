"""eval/load_test.py's load loop against a real uvicorn server on 127.0.0.1 (fake models), while the index changes."""

from __future__ import annotations

import re
import socket
import threading
import time

from conftest import FakeReader, load_eval_script
from test_cli_index import FAKE, fake_models  # noqa: F401 - fake_models: a fixture, by name

import qa.factory
from qa.config import Settings
from qa.indexing import build_index


def _module():
    return load_eval_script("load_test")


def test_load_loop_checks_every_citation_while_documents_come_and_go(tmp_path, tiny_corpus, fake_models,  # noqa: F811
                                                                     monkeypatch):
    import uvicorn

    from qa.server import create_app

    mod = _module()
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: FakeReader())
    settings = Settings(embedder=FAKE)
    index_dir = tmp_path / "idx"
    build_index([tiny_corpus], index_dir, settings=settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(index_dir, Settings(), workers=2), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while not mod._request_ok(base + "healthz"):
        assert time.monotonic() < deadline, "server not ready"
        time.sleep(0.05)
    extra = tmp_path / "extra"
    extra.mkdir()

    def mutate(stop: threading.Event) -> int:
        writes = 0
        while not stop.is_set():
            (extra / "rome.txt").write_text("Rome is the capital of Italy. The Colosseum opened in 80.",
                                            encoding="utf-8")
            build_index([tiny_corpus, extra], index_dir, settings=settings, wait=30)
            (extra / "rome.txt").unlink()
            build_index([tiny_corpus], index_dir, settings=settings, prune=True, wait=30)
            writes += 2
        return writes

    questions = ["When did the Berlin Wall fall?", "When was the Eiffel Tower finished?", "When did Tokyo host?"]
    try:
        res = mod.run_load(base, questions, clients=3, seconds=2.0, mutate=mutate)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert res.errors == [] and res.requests > 3 and res.index_writes >= 2
    assert res.citations_checked > 0 and res.percentile(50) > 0
    table = mod.report(res, 3)
    assert "requests/s" in table and re.search(r"(?m)^errors\s+0$", table)
