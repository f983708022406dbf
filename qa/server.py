"""`qa serve`: a FastAPI app over one index (JSON API and the web page in qa/web/); its pools live in qa/serving.py.

Design:

- The models load once, in a background thread started with the app; until they are ready ``/ask`` answers
  503 and ``/healthz`` says "loading" (``/documents`` and ``/status`` need no model and work at once).
- Questions are answered by a fixed pool of worker threads that *share* the loaded embedder and reader, each
  thread with its own read-only :class:`~qa.store.PassageStore` (hence its own Assistant). A store's SQLite
  connection belongs to the thread that opened it, so one Assistant cannot be shared across threads; a lock
  around one would answer a single question at a time; one Assistant per worker *with its own models* would
  load the reader and embedder once per core. Inference is read-only: ONNX Runtime sessions and torch modules in
  inference mode may be run from several threads at once, and the tokenizers are configured once at load.
  What each worker adds is its connection and its copy of the FAISS vectors (4 bytes x dim per passage), made
  on the thread's first question: a pool that is never busy never opens them all.
- The pool has a bounded queue: a burst waits for a free worker; once ``workers + queue_size`` questions are in
  the server the next one gets 503 "busy" at once rather than piling up in memory. A question that takes longer
  than ``timeout_s`` (waiting included) gets 504; a queued one is then dropped, a running one finishes in its
  thread (Python threads cannot be stopped) and holds its slot until it does, so the bound stays true.
- A new generation written by `qa index` while the server runs is picked up without a restart: each search
  reads the manifest and the FAISS file it names inside one SQLite read transaction (a writer commits the switch
  atomically, so a half-written generation is never seen), and ``Assistant.ask`` asks again when a cited
  document changed between retrieval and reading. A worker reopens its store when the database file itself
  is replaced (a damaged index rebuilt afresh).
- Security: binding beyond loopback needs a token (:func:`check_bind`); with one, every data endpoint wants
  ``Authorization: Bearer TOKEN``. Request bodies and questions are size-limited, doc ids are only looked up
  in the store (never joined to a path), no CORS unless origins are given, and on loopback the Host header
  may be restricted (``allowed_hosts``) so that a web page cannot reach the server through DNS rebinding.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa.config import Settings
from qa.errors import (
    DocumentNotFoundError,
    EmptyCorpusError,
    IndexChangedError,
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexNotFoundError,
    ModelLoadError,
    QAError,
    QuestionError,
)
from qa.schema import Span
from qa.serving import ApiError, Service
from qa.show import SHOW_CONTEXT_CHARS
from qa.store import is_milvus_location, open_index

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Largest request body accepted, in bytes (a question of MAX_QUESTION_CHARS escaped as \uXXXX fits well).
MAX_BODY_BYTES = 64 * 1024
#: Most passages one request may hand to the reader (``top_k``).
MAX_TOP_K = 50
#: Most characters of context on each side of a span that ``/documents/{doc_id}`` returns.
MAX_CONTEXT_CHARS = 10_000
#: Questions that may wait for a worker, per worker, when ``queue_size`` is not given.
QUEUE_PER_WORKER = 4
#: Host names that are the loopback interface (``allowed_hosts`` of a server bound to it).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: Paths served without the token: the page and its files, the health probe and the API description hold no data.
OPEN_PATHS = frozenset({"/", "/healthz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})
#: The web page's files in qa/web/ and their media types; nothing else is served from there.
WEB_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_PAGE_HEADERS = {
    # the page loads only its own files and talks only to this server
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or "localhost") is the loopback interface: only this machine reaches it."""
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token: ValueError naming the host and what to do."""
    if token is not None and not token.strip():
        raise ValueError("the token is empty: give a non-empty --token (or QA_TOKEN)")
    if token is None and not is_loopback(host):
        raise ValueError(
            f"--host {host} is not a loopback address, so anyone who can reach this machine could read the "
            f"indexed documents: set a token with --token or the QA_TOKEN environment variable (clients send "
            f"`Authorization: Bearer TOKEN`), or keep the default --host 127.0.0.1"
        )


# ---- the pool ------------------------------------------------------------------------------------


# ---- requests and responses ----------------------------------------------------------------------


class AskRequest(BaseModel):
    """The body of ``POST /ask``."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="The question (at most 2,000 characters).")
    top_k: int | None = Field(None, ge=1, le=MAX_TOP_K, description="Passages handed to the reader. [default: 5]")
    retriever: Literal["dense", "bm25", "hybrid"] | None = Field(None, description="[default: hybrid]")
    min_score: float | None = Field(None, ge=0.0, le=1.0, description="Abstain below this answer score.")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _status_of(exc: QAError) -> int:
    if isinstance(exc, QuestionError):
        return 422
    if isinstance(exc, DocumentNotFoundError):
        return 404
    if isinstance(exc, EmptyCorpusError):
        return 409
    if isinstance(exc, IndexCorruptError):
        return 500
    if isinstance(exc, (IndexNotFoundError, IndexMismatchError, IndexLockedError, IndexChangedError,
                        ModelLoadError)):
        return 503
    return 500


def _describe_validation(exc: RequestValidationError) -> str:
    """One line naming each bad field: "top_k: Input should be greater than or equal to 1"."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        if err.get("type") == "json_invalid":
            parts.append(f"the request body is not valid JSON ({err.get('ctx', {}).get('error', err['msg'])})")
        elif err.get("type") == "missing" and not loc:
            parts.append("the request body must be a JSON object such as {\"question\": \"...\"}")
        else:
            parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


#: Swagger UI's files that /docs needs, served from the swagger-ui-bundle package (no CDN).
SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
                 "favicon-32x32.png": "image/png"}


def _swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def _web_file(name: str) -> bytes:
    return (resources.files("qa") / "web" / name).read_bytes()


# ---- the guard: host, token, body size -----------------------------------------------------------


class _Guard:
    """ASGI middleware that answers before the app: 400 for a Host not allowed, 401 without the token,
    413 for a body over the limit (buffered here, so a chunked body is measured too)."""

    def __init__(self, app, *, token: str | None, max_body_bytes: int, allowed_hosts: Sequence[str] | None):
        self.app = app
        self.token = token.encode() if token is not None else None
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None:
            host = _host_name(headers.get("host", ""))
            if host not in self.allowed_hosts:
                await _send(send, 400, f"Host {host!r} is not served here: this server answers only requests for "
                            f"{', '.join(sorted(self.allowed_hosts))}")
                return
        path = scope.get("path", "")
        if self.token is not None and path not in OPEN_PATHS and not path.startswith(("/static/", "/docs/")):
            scheme, _, credential = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), self.token):
                await _send(send, 401, "missing or wrong token: send `Authorization: Bearer TOKEN`",
                            {"WWW-Authenticate": "Bearer"})
                return
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _send(send, 400, f"bad Content-Length {length!r}")
                return
            if int(length) > self.max_body_bytes:
                await _send(send, 413, self._too_large())
                return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                await _send(send, 413, self._too_large())
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the request body is over the limit of {self.max_body_bytes:,} bytes"


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


async def _send(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    response = _error(status, message, headers)
    await send({"type": "http.response.start", "status": status, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


# ---- the app -------------------------------------------------------------------------------------


def create_app(
    index_dir: str | Path | None = None,
    settings: Settings | None = None,
    *,
    token: str | None = None,
    workers: int | None = None,
    queue_size: int | None = None,
    timeout_s: float = 30.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    cors_origins: Sequence[str] = (),
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The `qa serve` app over the index in ``index_dir`` (default ``settings.index_dir``).

    Args:
        index_dir: the index folder; it must hold an index (checked now).
        settings: models and defaults, as for :meth:`qa.pipeline.Assistant.open`.
        token: when given, every data endpoint needs ``Authorization: Bearer TOKEN`` (401 otherwise).
        workers: questions answered at once (default: one per CPU core).
        queue_size: questions that may wait for a worker before 503 "busy" (default: 4 per worker).
        timeout_s: seconds a question may take, waiting included, before 504.
        max_body_bytes: larger request bodies get 413.
        cors_origins: origins whose pages may call the API (none by default: no CORS headers).
        allowed_hosts: Host header values accepted (None: any); a server bound to loopback passes
            :data:`LOOPBACK_HOSTS`, so a web page cannot reach it by DNS rebinding.

    Raises:
        IndexNotFoundError, IndexCorruptError, IndexMismatchError: no readable index there.
        ValueError: a limit is out of range.
    """

    settings = settings or Settings.from_env()
    index_dir = index_dir if index_dir is not None else settings.index_dir
    index_dir = str(index_dir) if is_milvus_location(index_dir) else Path(index_dir)  # a URI is not a path
    workers = (os.cpu_count() or 1) if workers is None else workers
    queue_size = QUEUE_PER_WORKER * workers if queue_size is None else queue_size
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if queue_size < 0:
        raise ValueError(f"queue_size must not be negative, got {queue_size}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    if token is not None and not token.strip():
        raise ValueError("the token is empty")
    open_index(index_dir).close()  # a missing or damaged index fails now, not on the first question
    service = Service(index_dir, settings, workers=workers, queue_size=queue_size, timeout_s=timeout_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.close()

    from qa import __version__

    app = FastAPI(
        title="qa",
        version=__version__,
        description="Ask questions about the indexed documents; get exact answer spans with citations.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's own /docs loads Swagger UI from a CDN: served from the package instead
        redoc_url=None,
    )
    app.state.service = service
    _add_error_handlers(app)
    _add_routes(app, service)
    app.add_middleware(_Guard, token=token, max_body_bytes=max_body_bytes, allowed_hosts=allowed_hosts)
    if cors_origins:  # outermost, so a preflight (which carries no token) is answered
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, str(exc), exc.headers)

    @app.exception_handler(QAError)
    async def qa_error(_request: Request, exc: QAError) -> JSONResponse:
        return _error(_status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return _error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _add_routes(app: FastAPI, service: Service) -> None:
    @app.post("/ask", summary="Answer a question: the `qa ask --json` object")
    async def ask(body: AskRequest) -> dict[str, Any]:
        from qa.pipeline import check_question

        check_question(body.question)  # 422 before queueing
        service.require_models()
        return await service.questions.run(lambda assistant: service.ask(assistant, body), service.timeout_s)

    @app.get("/documents", summary="The indexed documents and their ids (as `qa status --docs` lists them)")
    async def documents() -> dict[str, Any]:
        rows = await service.lookups.run(lambda store: store.document_summaries())
        return {"documents": rows}

    @app.get("/documents/{doc_id:path}",
             summary="A document's stored text, or the span start:end in its context (the `qa show --json` object)")
    async def document(
        doc_id: str,
        start: Annotated[int | None, Query(ge=0, description="Start of a cited span (character offset).")] = None,
        end: Annotated[int | None, Query(ge=0, description="End of a cited span (character offset).")] = None,
        context: Annotated[int, Query(ge=0, le=MAX_CONTEXT_CHARS,
                                      description="Characters of context on each side of the span.")]
        = SHOW_CONTEXT_CHARS,
    ) -> dict[str, Any]:
        from qa.show import excerpt

        if (start is None) != (end is None):
            raise ApiError(422, "give both start and end (a citation's [start:end]), or neither")
        try:
            span = None if start is None else Span(start, end)
        except ValueError:
            raise ApiError(422, f"span [{start}:{end}] ends before it starts") from None

        def look_up(store):
            try:
                doc = store.get_document(doc_id)  # an id is only ever a key in the store, never a path
            except KeyError:
                raise DocumentNotFoundError(f"no document {doc_id!r} in the index (GET /documents lists the ids)"
                                            ) from None
            try:
                return excerpt(doc, span, context=context).to_dict()
            except QAError as exc:
                raise ApiError(422, str(exc)) from None

        return await service.lookups.run(look_up)

    @app.get("/status", summary="What the index holds (the `qa status --json` object)")
    async def status(docs: Annotated[bool, Query(description="Also list every document.")] = False) -> dict[str, Any]:
        from qa.indexing import index_status

        return await service.lookups.run(lambda _store: index_status(service.index_dir, documents=docs))

    @app.get("/healthz", summary="loading, ready or failed (503 until ready), workers, questions running or waiting")
    async def healthz() -> JSONResponse:
        body: dict[str, Any] = {"status": service.state, "workers": service.questions.workers,
                                "questions_in_flight": service.questions.in_flight}
        if service.load_error is not None:
            body["error"] = service.load_error
        return JSONResponse(body, status_code=200 if service.models is not None else 503)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response(_web_file("index.html"), media_type=WEB_FILES["index.html"], headers=_PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        from fastapi.openapi.docs import get_swagger_ui_html

        if _swagger_dir() is None:
            return Response("<p>Swagger UI is not installed (pip install swagger-ui-bundle); the API is described "
                            "at <a href='openapi.json'>/openapi.json</a>.</p>", media_type="text/html")
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="qa API", swagger_js_url="/docs/swagger-ui-bundle.js",
            swagger_css_url="/docs/swagger-ui.css", swagger_favicon_url="/docs/favicon-32x32.png")

    @app.get("/docs/{name}", include_in_schema=False)
    async def docs_file(name: str) -> Response:
        folder = _swagger_dir()
        if folder is None or name not in SWAGGER_FILES:
            raise ApiError(404, f"no file {name!r} here")
        return Response((folder / name).read_bytes(), media_type=SWAGGER_FILES[name])

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in WEB_FILES or name == "index.html":
            raise ApiError(404, f"no file {name!r}")
        return Response(_web_file(name), media_type=WEB_FILES[name], headers={"Cache-Control": "no-cache"})

