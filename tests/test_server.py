"""`qa serve`: the HTTP API and web page (FastAPI TestClient, fake models), its limits, token and live re-indexing."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from conftest import TINY_DOCS, FakeReader
from fastapi.testclient import TestClient
from test_cli_index import FAKE, cli, fake_models  # noqa: F401 - fake_models: a fixture, by name

import qa.factory
from qa.config import Settings
from qa.errors import ModelLoadError
from qa.indexing import build_index, index_status
from qa.server import LOOPBACK_HOSTS, MAX_BODY_BYTES, check_bind, create_app, is_loopback

WALL = "When did the Berlin Wall fall?"


@pytest.fixture
def index_dir(tmp_path, tiny_corpus, fake_models, monkeypatch):  # noqa: F811
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: FakeReader())
    monkeypatch.delenv("QA_TOKEN", raising=False)
    cli("index", tiny_corpus, "--index-dir", tmp_path / "idx")
    return tmp_path / "idx"


def wait_ready(client: TestClient, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get("/healthz")
        if r.json()["status"] != "loading" or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.01)


def serving(index_dir: Path, **kw) -> TestClient:
    """A TestClient whose app has started (lifespan: the models load in the background)."""
    return TestClient(create_app(index_dir, Settings(), **kw))


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    return body["error"]


# ---- endpoints -----------------------------------------------------------------------------------


def test_ask_returns_the_qa_ask_json_object(index_dir):
    from qa.pipeline import Assistant

    with serving(index_dir, workers=2) as client:
        assert wait_ready(client) == {"status": "ready", "workers": 2, "questions_in_flight": 0}
        r = client.post("/ask", json={"question": WALL})
        assert r.status_code == 200, r.text
        data = r.json()
        assistant = Assistant.open(index_dir, Settings())
        try:
            assert data == assistant.ask(WALL).to_dict()  # exactly `qa ask --json`
        finally:
            assistant.close()
        assert set(data) == {"question", "abstained", "answers", "candidates", "passages"}
        best = data["answers"][0]
        assert best["text"] == "1989" and best["doc_id"] == "berlin"
        assert TINY_DOCS["berlin"][best["start"] : best["end"]] == "1989"
        ctx = best["context"]
        assert ctx[best["start"] - best["context_start"] : best["end"] - best["context_start"]] == "1989"
        small = client.post("/ask", json={"question": WALL, "top_k": 1, "retriever": "bm25", "min_score": 0.95})
        assert small.status_code == 200 and len(small.json()["passages"]) == 1
        assert small.json()["abstained"] is True  # the fake reader scores 0.9


def test_documents_status_and_a_span_in_context(index_dir):
    with serving(index_dir) as client:
        listing = client.get("/documents").json()["documents"]
        assert [d["doc_id"] for d in listing] == ["berlin", "jean", "paris", "tokyo"]
        assert set(listing[0]) == {"doc_id", "title", "source", "chars", "passages"}
        assert client.get("/status").json() == index_status(index_dir)
        assert client.get("/status?docs=true").json()["document_list"] == listing

        whole = client.get("/documents/berlin").json()
        assert whole["text"] == TINY_DOCS["berlin"] and whole["span"] is None
        s = TINY_DOCS["berlin"].index("1989")
        cited = client.get(f"/documents/berlin?start={s}&end={s + 4}&context=5").json()
        assert cited["span"] == {"start": s, "end": s + 4, "text": "1989"}
        w = cited["window"]
        assert TINY_DOCS["berlin"][w["start"] : w["end"]] == cited["text"] and w["start"] <= s < s + 4 <= w["end"]


def test_document_errors(index_dir):
    with serving(index_dir) as client:
        assert "no document 'rome'" in error_of(client.get("/documents/rome"), 404)
        # an id is only a key in the store: path tricks find nothing and read no file
        assert "no document '../../etc/passwd'" in error_of(client.get("/documents/..%2F..%2Fetc%2Fpasswd"), 404)
        assert "both start and end" in error_of(client.get("/documents/berlin?start=3"), 422)
        assert "ends before it starts" in error_of(client.get("/documents/berlin?start=9&end=3"), 422)
        assert "runs past document 'berlin'" in error_of(client.get("/documents/berlin?start=0&end=9999"), 422)
        assert "start" in error_of(client.get("/documents/berlin?start=-1&end=3"), 422)
        error_of(client.get("/nowhere"), 404)
        error_of(client.get("/ask"), 405)


def test_healthz_page_and_docs(index_dir):
    with serving(index_dir) as client:
        wait_ready(client)
        assert client.get("/healthz").status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert 'src="static/app.js"' in page.text and 'href="static/style.css"' in page.text
        files = {"/": page.text}
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            r = client.get(f"/static/{name}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
            files[name] = r.text
        for name, text in files.items():
            assert not re.search(r"https?://", text), f"{name} names an external URL"
        assert "innerHTML" not in files["app.js"] and "textContent" in files["app.js"]
        error_of(client.get("/static/index.html"), 404)
        error_of(client.get("/static/server.py"), 404)
        docs = client.get("/docs")
        assert docs.status_code == 200
        # Swagger UI comes from the package, not a CDN: every script and style the page names is served here
        assert not re.search(r"(src|href)=['\"]https?://", docs.text), "the /docs page loads from the network"
        for name in re.findall(r"/docs/([\w.-]+\.(?:js|css))", docs.text):
            assert client.get(f"/docs/{name}").status_code == 200, name
        error_of(client.get("/docs/../server.py"), 404)
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/ask", "/documents", "/documents/{doc_id}", "/status", "/healthz"} <= set(paths)


def test_web_files_are_package_data():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '"web/*"' in text


def test_the_page_marks_unsure_answers_at_the_settings_threshold():
    import re

    from qa.config import Settings

    js = (Path(__file__).resolve().parents[1] / "qa" / "web" / "app.js").read_text(encoding="utf-8")
    m = re.search(r"const UNSURE_BELOW = ([0-9.]+);", js)
    assert m and float(m.group(1)) == Settings().unsure_below  # one default, written twice: kept equal here
    assert "data.candidates" in js  # an abstained answer shows the best guess


# ---- errors --------------------------------------------------------------------------------------


def test_bad_questions_and_bodies_get_422(index_dir):
    with serving(index_dir) as client:
        wait_ready(client)
        assert error_of(client.post("/ask", json={"question": "   "}), 422) == "the question is empty"
        assert "2,500 characters long; the limit is 2,000" in error_of(
            client.post("/ask", json={"question": "x" * 2500}), 422)
        assert "not valid UTF-8" in error_of(client.post(
            "/ask", content=b'{"question": "bad \\ud800 text"}', headers={"content-type": "application/json"}), 422)
        assert "not valid JSON" in error_of(
            client.post("/ask", content=b"{nope", headers={"content-type": "application/json"}), 422)
        assert "question" in error_of(client.post("/ask", json={}), 422)
        assert "JSON object" in error_of(client.post("/ask"), 422)
        assert "top_k" in error_of(client.post("/ask", json={"question": WALL, "top_k": 0}), 422)
        assert "retriever" in error_of(client.post("/ask", json={"question": WALL, "retriever": "magic"}), 422)
        assert "min_score" in error_of(client.post("/ask", json={"question": WALL, "min_score": 2}), 422)
        assert "topk" in error_of(client.post("/ask", json={"question": WALL, "topk": 3}), 422)
        assert "question" in error_of(client.post("/ask", json={"question": 42}), 422)


def test_a_body_over_the_limit_gets_413(index_dir):
    with serving(index_dir) as client:
        big = b'{"question": "' + b"x" * MAX_BODY_BYTES + b'"}'
        assert "over the limit" in error_of(
            client.post("/ask", content=big, headers={"content-type": "application/json"}), 413)

        def chunks():  # no Content-Length: the body is counted as it comes
            for _ in range(MAX_BODY_BYTES // 1000 + 2):
                yield b"x" * 1000

        assert "over the limit" in error_of(client.post("/ask", content=chunks()), 413)


def test_loading_models_answer_503_and_healthz_says_so(index_dir, monkeypatch):
    gate = threading.Event()

    def slow_reader(settings):
        gate.wait(10)
        return FakeReader()

    monkeypatch.setattr(qa.factory, "make_reader", slow_reader)
    with serving(index_dir) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "loading"
        r = client.post("/ask", json={"question": WALL})
        assert "still loading" in error_of(r, 503) and r.headers["retry-after"]
        assert client.get("/documents").status_code == 200  # no model needed
        gate.set()
        assert wait_ready(client)["status"] == "ready"
        assert client.post("/ask", json={"question": WALL}).status_code == 200


def test_models_that_fail_to_load_are_reported(index_dir, monkeypatch):
    def broken(settings):
        raise ModelLoadError("reader '/nowhere': no such folder")

    monkeypatch.setattr(qa.factory, "make_reader", broken)
    with serving(index_dir) as client:
        health = wait_ready(client)
        assert health["status"] == "failed" and "no such folder" in health["error"]
        assert client.get("/healthz").status_code == 503
        assert "no such folder" in error_of(client.post("/ask", json={"question": WALL}), 503)


class GatedReader(FakeReader):
    """Holds every question until released; says when one has started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def read(self, question, hits, **kw):
        self.started.set()
        self.release.wait(10)
        return super().read(question, hits, **kw)


def test_a_slow_question_gets_504(index_dir, monkeypatch):
    reader = GatedReader()
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: reader)
    with serving(index_dir, workers=1, timeout_s=0.2) as client:
        wait_ready(client)
        assert "time limit of 0.2 s" in error_of(client.post("/ask", json={"question": WALL}), 504)
        reader.release.set()
        deadline = time.monotonic() + 5  # the slot frees once the question really ends
        while (r := client.post("/ask", json={"question": WALL})).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.status_code == 200


def test_a_full_queue_answers_busy(index_dir, monkeypatch):
    reader = GatedReader()
    monkeypatch.setattr(qa.factory, "make_reader", lambda settings: reader)
    with serving(index_dir, workers=1, queue_size=1) as client:
        wait_ready(client)
        results = []
        first = threading.Thread(target=lambda: results.append(client.post("/ask", json={"question": WALL})))
        first.start()
        assert reader.started.wait(5)
        second = threading.Thread(target=lambda: results.append(client.post("/ask", json={"question": WALL})))
        second.start()
        deadline = time.monotonic() + 5
        while client.get("/healthz").json()["questions_in_flight"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the second waits in the queue
        r = client.post("/ask", json={"question": WALL})
        assert "busy: all 1 worker(s) are answering questions and 1 more are waiting" in error_of(r, 503)
        assert r.headers["retry-after"] == "1"
        reader.release.set()
        first.join(5)
        second.join(5)
        assert [x.status_code for x in results] == [200, 200]


# ---- security ------------------------------------------------------------------------------------


def test_binding_beyond_loopback_needs_a_token():
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"):
        assert not is_loopback(host)
        with pytest.raises(ValueError, match=f"--host {re.escape(host)} is not a loopback address.*QA_TOKEN"):
            check_bind(host, None)
        check_bind(host, "s3cret")
    with pytest.raises(ValueError, match="empty"):
        check_bind("0.0.0.0", "  ")


def test_with_a_token_data_needs_it(index_dir):
    with serving(index_dir, token="s3cret") as client:
        wait_ready(client)
        for method, path in (("post", "/ask"), ("get", "/documents"), ("get", "/documents/berlin"),
                             ("get", "/status")):
            r = getattr(client, method)(path, json={"question": WALL}) if method == "post" else client.get(path)
            assert "token" in error_of(r, 401) and r.headers["www-authenticate"] == "Bearer"
            wrong = {"Authorization": "Bearer nope"}
            r = client.post(path, json={"question": WALL}, headers=wrong) if method == "post" else client.get(
                path, headers=wrong)
            error_of(r, 401)
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/ask", json={"question": WALL}, headers=good).status_code == 200
        assert client.get("/documents/berlin", headers=good).status_code == 200
        for path in ("/", "/static/app.js", "/healthz", "/openapi.json"):  # no data in these
            assert client.get(path).status_code == 200
        assert client.post("/ask", content=b"x" * (MAX_BODY_BYTES + 1)).status_code == 401  # token before body


def test_no_cors_unless_asked(index_dir):
    origin = {"Origin": "http://elsewhere.example"}
    with serving(index_dir) as client:
        assert "access-control-allow-origin" not in client.get("/documents", headers=origin).headers
    with serving(index_dir, token="t", cors_origins=("http://elsewhere.example",)) as client:
        pre = client.options("/ask", headers={**origin, "Access-Control-Request-Method": "POST",
                                              "Access-Control-Request-Headers": "authorization,content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://elsewhere.example"
        r = client.get("/documents", headers={**origin, "Authorization": "Bearer t"})
        assert r.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_on_loopback_other_host_names_are_refused(index_dir):
    with TestClient(create_app(index_dir, Settings(), allowed_hosts=LOOPBACK_HOSTS),
                    base_url="http://127.0.0.1:8000") as client:
        assert client.get("/documents").status_code == 200
        assert client.get("/documents", headers={"host": "localhost:8000"}).status_code == 200
        assert client.get("/documents", headers={"host": "[::1]:8000"}).status_code == 200
        assert "is not served here" in error_of(client.get("/documents", headers={"host": "evil.example"}), 400)


# ---- the index changes while serving -------------------------------------------------------------


def test_a_document_indexed_while_serving_is_answered_without_a_restart(index_dir, tmp_path):
    question = "When did Rome host the Olympics?"
    with serving(index_dir, workers=2) as client:
        wait_ready(client)
        before = client.post("/ask", json={"question": question}).json()
        assert all(a["doc_id"] != "rome" for a in before["answers"])
        new = tmp_path / "more"
        new.mkdir()
        (new / "rome.txt").write_text("Rome is the capital of Italy. Rome hosted the Olympics in 1960.",
                                      encoding="utf-8")
        build_index([new], index_dir, settings=Settings(embedder=FAKE))
        after = client.post("/ask", json={"question": question}).json()
        assert after["answers"][0]["doc_id"] == "rome" and after["answers"][0]["text"] == "1960"
        assert "rome" in [d["doc_id"] for d in client.get("/documents").json()["documents"]]
        assert client.get("/status").json()["documents"] == 5


def test_questions_during_index_writes_never_fail(index_dir, tmp_path):
    """Every answer comes from one whole generation, whatever the writer is doing."""
    folder = tmp_path / "changing"
    folder.mkdir()
    stop = threading.Event()
    failures: list[str] = []

    def write() -> None:
        for year in range(1900, 1912):
            (folder / "berlin.txt").write_text(f"The Berlin Wall fell in {year}. Berlin is in Germany.",
                                               encoding="utf-8")
            build_index([folder], index_dir, settings=Settings(embedder=FAKE), wait=10)
        stop.set()

    with serving(index_dir, workers=2) as client:
        wait_ready(client)
        writer = threading.Thread(target=write)
        writer.start()
        asked = 0
        while not stop.is_set() or asked < 5:
            r = client.post("/ask", json={"question": WALL})
            asked += 1
            if r.status_code != 200:
                failures.append(r.text)
                continue
            for a in r.json()["answers"]:
                ctx = a["context"][a["start"] - a["context_start"] : a["end"] - a["context_start"]]
                if ctx != a["text"]:
                    failures.append(f"answer {a} does not slice back out of its context")
        writer.join(30)
        final = client.post("/ask", json={"question": WALL}).json()
    assert not failures, failures[:3]
    assert final["answers"][0]["text"] == "1911"


def test_an_index_rebuilt_with_another_embedder_says_restart(index_dir, tiny_corpus):
    with serving(index_dir) as client:
        wait_ready(client)
        assert client.post("/ask", json={"question": WALL}).status_code == 200
        build_index([tiny_corpus], index_dir, settings=Settings(embedder="other-embedder"), rebuild=True)
        assert "restart `qa serve`" in error_of(client.post("/ask", json={"question": WALL}), 503)


def test_create_app_checks_the_index_and_its_limits(tmp_path, index_dir):
    from qa.errors import IndexNotFoundError

    with pytest.raises(IndexNotFoundError, match="qa index"):
        create_app(tmp_path / "none", Settings())
    for bad in ({"workers": 0}, {"queue_size": -1}, {"timeout_s": 0}, {"token": ""}):
        with pytest.raises(ValueError):
            create_app(index_dir, Settings(), **bad)


# ---- the CLI -------------------------------------------------------------------------------------


def test_serve_help_lists_the_options():
    out = cli("serve", "--help").stdout
    for option in ("--index-dir", "--host", "--port", "--token", "--workers", "--cors-origin", "127.0.0.1"):
        assert option in out


def test_serve_beyond_loopback_without_a_token_exits_2(monkeypatch, tmp_path):
    monkeypatch.delenv("QA_TOKEN", raising=False)
    result = cli("serve", "--host", "0.0.0.0", "--index-dir", tmp_path / "idx", code=2)
    assert "--host 0.0.0.0 is not a loopback address" in result.stderr and "QA_TOKEN" in result.stderr


def test_serve_runs_uvicorn_on_the_app(index_dir, monkeypatch):
    import uvicorn

    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(app=app, **kw))
    monkeypatch.setenv("QA_TOKEN", "from-env")
    cli("serve", "--host", "0.0.0.0", "--port", "8123", "--workers", "3", "--index-dir", index_dir)
    assert ran["host"] == "0.0.0.0" and ran["port"] == 8123
    with TestClient(ran["app"]) as client:
        assert client.get("/documents").status_code == 401
        assert client.get("/documents", headers={"Authorization": "Bearer from-env"}).status_code == 200
        assert wait_ready(client)["workers"] == 3
    missing = cli("serve", "--index-dir", index_dir.parent / "none", code=1)
    assert "no index" in missing.stderr
