"""Load on `qa serve`: concurrent clients asking SQuAD questions while `qa index` adds and removes documents.

    python eval/load_test.py ../shared/data/squad/squad11-dev-train.json [--clients 4] [--seconds 60]
        [--articles 6] [--work DIR] [--port 8765]

Indexes the paragraphs of the first --articles articles of the file into --work/index (each paragraph one
document), starts `qa serve` on 127.0.0.1, waits until its models are ready, then for --seconds runs --clients
threads that each ask the file's questions (round robin, POST /ask) while another thread runs `qa index` over and
over, adding a few documents and then removing them (`--prune`). Every answer's citation is checked against the
document the server returns (GET /documents/{doc_id}): ``text[start:end] == answer``. Prints requests/s,
latency p50/p95/p99, errors (any non-200 answer or failed check; must be 0) and the index writes done, with the
machine. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@dataclass
class LoadResult:
    """What the clients saw."""

    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    citations_checked: int = 0
    documents_gone: int = 0  # cited documents removed by the indexer before the check could fetch them
    abstained: int = 0
    index_writes: int = 0

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + len(self.errors)

    def percentile(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def _request(url: str, body: dict | None = None, timeout: float = 60.0) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except ValueError:
            return exc.code, {}


def run_load(
    base_url: str, questions: Sequence[str], *, clients: int, seconds: float,
    mutate: Callable[[threading.Event], int] | None = None,
) -> LoadResult:
    """``clients`` threads asking ``questions`` at ``base_url`` for ``seconds``; ``mutate(stop)`` runs beside them
    (changing the index) and returns how many writes it made. Every citation is checked against GET /documents."""
    res = LoadResult(seconds=seconds)
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        n = i
        while not stop.is_set():
            q = questions[n % len(questions)]
            n += clients
            t0 = time.perf_counter()
            status, data = _request(base_url + "ask", {"question": q})
            ms = (time.perf_counter() - t0) * 1000
            problem = None if status == 200 else f"POST /ask {status}: {data.get('error', data)}"
            gone = checked = 0
            if problem is None and data.get("answers"):
                for a in data["answers"]:
                    doc = urllib.parse.quote(a["doc_id"], safe="")
                    s, d = _request(base_url + f"documents/{doc}")
                    if s == 404:
                        gone += 1
                    elif s != 200:
                        problem = f"GET /documents/{a['doc_id']} {s}"
                    elif d["text"][a["start"] : a["end"]] != a["text"]:
                        problem = (f"citation {a['doc_id']} [{a['start']}:{a['end']}] does not slice back to "
                                   f"{a['text']!r}")
                    else:
                        checked += 1
            with lock:
                if problem is None:
                    res.latencies_ms.append(ms)
                    res.abstained += bool(data.get("abstained"))
                else:
                    res.errors.append(problem)
                res.citations_checked += checked
                res.documents_gone += gone

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    writes: list[int] = []
    writer = threading.Thread(target=lambda: writes.append(mutate(stop)), daemon=True) if mutate else None
    t0 = time.perf_counter()
    for t in [*threads, *([writer] if writer else [])]:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    res.seconds = time.perf_counter() - t0  # until the last client's last answer; the writer may go on a little
    if writer is not None:
        writer.join(timeout=300)
    res.index_writes = sum(writes)
    return res


def report(res: LoadResult, clients: int) -> str:
    rows = [
        ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"),
        ("clients", str(clients)),
        ("duration", f"{res.seconds:.1f} s"),
        ("requests", str(res.requests)),
        ("requests/s", f"{res.requests / res.seconds:.2f}"),
        ("latency p50 / p95 / p99",
         f"{res.percentile(50):.0f} / {res.percentile(95):.0f} / {res.percentile(99):.0f} ms"),
        ("errors", str(len(res.errors))),
        ("citations checked", f"{res.citations_checked} (+{res.documents_gone} whose document was removed meanwhile)"),
        ("abstained", str(res.abstained)),
        ("index writes during the run", str(res.index_writes)),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"  error: {e}" for e in res.errors[:10]]
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    from qa.evaluation import load_gold

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("squad", type=Path, help="SQuAD-format file: its paragraphs are indexed, its questions asked")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--articles", type=int, default=6, help="articles of the file indexed")
    ap.add_argument("--work", type=Path, default=Path.home() / "qa-runs" / "load-test")
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0:
        ap.error("--clients must be at least 1 and --seconds positive")

    gold = load_gold(args.squad)
    titles = list(dict.fromkeys(d.title for d in gold.documents))[: args.articles]
    docs = [d for d in gold.documents if d.title in titles]
    wanted = {d.doc_id for d in docs}
    questions = [e.question for e in gold.examples if e.doc_id in wanted]
    corpus, extra = args.work / "docs", args.work / "extra"
    shutil.rmtree(args.work, ignore_errors=True)
    corpus.mkdir(parents=True)
    extra.mkdir()
    for d in docs:
        (corpus / f"{d.doc_id.replace('/', '_')}.txt").write_text(d.text, encoding="utf-8")
    others = [d for d in gold.documents if d.title not in titles][:5]
    index_dir = args.work / "index"
    qa = [sys.executable, "-m", "qa"]
    subprocess.run([*qa, "index", str(corpus), "--index-dir", str(index_dir)], check=True)
    port = args.port or _free_port()
    server = subprocess.Popen([*qa, "serve", "--index-dir", str(index_dir), "--port", str(port)])
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while _request_ok(base + "healthz") is False:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("error: qa serve did not become ready")
            time.sleep(0.5)

        def mutate(stop: threading.Event) -> int:
            writes = 0
            while not stop.is_set():
                for d in others:  # add documents from other articles ...
                    (extra / f"{d.doc_id.replace('/', '_')}.txt").write_text(d.text, encoding="utf-8")
                subprocess.run([*qa, "index", str(corpus), str(extra), "--index-dir", str(index_dir), "--wait", "60"],
                               check=True, capture_output=True)
                writes += 1
                for f in extra.iterdir():  # ... then remove them again
                    f.unlink()
                subprocess.run([*qa, "index", str(corpus), "--prune", "--index-dir", str(index_dir), "--wait", "60"],
                               check=True, capture_output=True)
                writes += 1
            return writes

        res = run_load(base, questions, clients=args.clients, seconds=args.seconds, mutate=mutate)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(report(res, args.clients))
    return 1 if res.errors else 0


def _request_ok(url: str) -> bool:
    try:
        return _request(url, timeout=5)[0] == 200
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
