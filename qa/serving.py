"""What a `qa serve` process shares between requests: the models (loaded once, in the background), the
bounded worker pools that answer questions and look documents up, and the errors they answer with."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from qa.config import Settings
from qa.errors import IndexMismatchError, QAError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Look-ups (documents, status) waiting for the one look-up thread before 503 "busy".
LOOKUP_QUEUE = 64


class ApiError(Exception):
    """An error response: HTTP status, message, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class WorkerPool:
    """Threads that each keep their own ``open_state()`` (a store or an Assistant over the index), and a
    bounded number of slots (running + waiting); :meth:`run` raises 503 when none is free."""

    def __init__(
        self, name: str, workers: int, waiting: int, db_path: Path | None, open_state: Callable[[], Any]
    ) -> None:
        self.name = name
        self.workers = workers
        self.waiting = waiting
        self._db_path = db_path
        self._open_state = open_state
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"qa-{name}")
        self._slots = threading.BoundedSemaphore(workers + waiting)
        self._count_lock = threading.Lock()
        self.in_flight = 0  # running + waiting
        self._local = threading.local()

    async def run(self, fn: Callable[[Any], T], timeout_s: float | None = None) -> T:
        """``fn(state)`` on a worker thread; 503 when the pool is full, 504 after ``timeout_s`` seconds."""
        if not self._slots.acquire(blocking=False):
            raise ApiError(
                503, f"the server is busy: all {self.workers} worker(s) are answering {self.name} and "
                f"{self.waiting} more are waiting; try again shortly", {"Retry-After": "1"})
        self._count(+1)
        try:
            future: Future = self._executor.submit(self._call, fn)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())  # when it ends, not when we stop waiting
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, f"no answer within the time limit of {timeout_s:g} s; try a shorter question, "
                            "fewer passages, or again when the server is less busy") from None

    def _count(self, step: int) -> None:
        with self._count_lock:
            self.in_flight += step

    def _release(self) -> None:
        self._count(-1)
        self._slots.release()

    def _call(self, fn: Callable[[Any], T]) -> T:
        return fn(self._state())

    def _state(self) -> Any:
        """This thread's state, reopened when the database file was replaced since it was opened."""
        local = self._local
        ident = None if self._db_path is None else _file_identity(self._db_path)
        state = getattr(local, "state", None)
        if state is not None and local.ident == ident:
            return state
        if state is not None:
            local.state = None
            state.close()
        local.state, local.ident = self._open_state(), ident
        return local.state

    def close(self) -> None:
        """Drop waiting work; running work ends in its thread (whose stores close with it)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass(frozen=True, slots=True)
class SharedModels:
    """What the loader thread made once and every worker shares."""

    settings: Settings  # resolved against the index (its embedder, a saved min_score)
    embedder: Any
    reader: Any


class Service:
    """The app's state: the models (loading in the background), the question pool and the look-up pool."""

    def __init__(
        self, index_dir: Path | str, settings: Settings, *, workers: int, queue_size: int, timeout_s: float
    ):
        from qa.store import DB_NAME

        self.index_dir = index_dir
        self.settings = settings
        self.timeout_s = timeout_s
        self.models: SharedModels | None = None
        self.load_error: str | None = None
        self._started = False
        self._lock = threading.Lock()
        from qa.store import is_milvus_location

        # a rebuilt folder index is a new database file, which workers notice and reopen; a Milvus index
        # is changed in place, and its readers see each change as it is made
        db = None if is_milvus_location(index_dir) else Path(index_dir) / DB_NAME
        self.questions = WorkerPool("questions", workers, queue_size, db, self._open_assistant)
        self.lookups = WorkerPool("look-ups", 1, LOOKUP_QUEUE, db, self._open_store)

    def start(self) -> None:
        """Start loading the models (once)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="qa-load-models", daemon=True).start()

    def close(self) -> None:
        self.questions.close()
        self.lookups.close()

    @property
    def state(self) -> str:
        return "ready" if self.models is not None else "failed" if self.load_error is not None else "loading"

    def _load(self) -> None:
        from qa.pipeline import Assistant

        try:
            assistant = Assistant.open(self.index_dir, self.settings)
            try:
                getattr(assistant.reader, "warm_up", lambda: None)()
                assistant.retriever.embedder.encode_query("warm up")  # a lazy model loads now, on one thread
                models = SharedModels(assistant.settings, assistant.retriever.embedder, assistant.reader)
            finally:
                assistant.close()
        except QAError as exc:
            self.load_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported by /healthz and /ask, logged with its traceback
            log.exception("loading the models failed")
            self.load_error = f"the models could not be loaded: {exc}"
        else:
            self.models = models
            log.info("models ready; answering from %s", self.index_dir)

    def require_models(self) -> SharedModels:
        if self.models is not None:
            return self.models
        if self.load_error is not None:
            raise ApiError(503, self.load_error)
        raise ApiError(503, "the models are still loading; try again in a few seconds", {"Retry-After": "2"})

    def _open_store(self):
        from qa.store import open_index

        return open_index(self.index_dir)

    def _open_assistant(self):
        """An Assistant over this thread's own store, sharing the loaded models (what Assistant.open wires)."""
        from qa.pipeline import Assistant
        from qa.retriever import Retriever

        m = self.require_models()
        store = self._open_store()
        try:
            store.check_embedder(m.embedder.model_name, m.embedder.dim)
            s = m.settings
            retriever = Retriever(m.embedder, store, mode=s.retriever, fusion_depth=s.fusion_depth, rrf_k=s.rrf_k)
            return Assistant(retriever, m.reader, s, store)
        except BaseException:
            store.close()
            raise

    def ask(self, assistant, request: Any) -> dict[str, Any]:
        """The ``qa ask --json`` object for a validated request (qa.server.AskRequest); runs on a worker thread."""
        m = self.require_models()
        stats = assistant.store.stats()  # the manifest now: `qa index --rebuild --embedder ...` may have run
        if (stats.embedder, stats.dim) != (m.embedder.model_name, m.embedder.dim):
            raise IndexMismatchError(
                f"the index in {self.index_dir} was rebuilt with embedder {stats.embedder!r} (dim {stats.dim}) "
                f"since this server loaded {m.embedder.model_name!r}: restart `qa serve` to answer from it")
        result = assistant.ask(request.question, top_k=request.top_k, retriever=request.retriever,
                               min_score=request.min_score)
        return result.to_dict()
