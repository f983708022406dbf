"""`qa serve`: the HTTP API and web page."""

from __future__ import annotations

from typing import Annotated

import typer

from qa.cli import common
from qa.cli.common import (
    IndexDir,
    IndexUri,
    app,
    error,
    index_location,
    make_settings,
    run_or_exit,
)


@app.command(short_help="Serve questions over HTTP: a JSON API and a web page (on 127.0.0.1 by default).")
def serve(
    index_dir: IndexDir = None,
    index_uri: IndexUri = None,
    host: Annotated[str, typer.Option(
        help="Address to listen on. One other than loopback (127.0.0.1, ::1) needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    token: Annotated[str | None, typer.Option(
        help="Require `Authorization: Bearer TOKEN` on API requests. [default: $QA_TOKEN, which also keeps it "
        "out of the process list]")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Questions answered at once (they share one copy of the models). [default: one per CPU core]")]
    = None,
    cors_origin: Annotated[list[str] | None, typer.Option(
        "--cors-origin", help="Let pages from this origin (e.g. a site's scheme://host:port) call the API; repeat "
        "for more. [default: none]")] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a question may take (waiting included) before "
                                           "the server answers 504.")] = 30.0,
) -> None:
    """Serve the index over HTTP: POST /ask, GET /documents[/ID], GET /status, GET /healthz, docs at /docs,
    and a web page at /.

    The models load once, in the background (/healthz says when they are ready). Beyond loopback a token is
    required (--token or QA_TOKEN), else the command refuses to start (exit 2).
    """
    from qa.config import server_token

    settings = make_settings(index_dir=index_location(index_dir, index_uri))
    token = token if token is not None else server_token()
    from qa import server

    try:
        server.check_bind(host, token)
    except ValueError as exc:
        error(str(exc))
        raise typer.Exit(2) from None
    allowed = server.LOOPBACK_HOSTS if server.is_loopback(host) else None  # no DNS rebinding onto loopback
    web = run_or_exit(lambda: server.create_app(
        settings.index_dir, settings, token=token, workers=workers, timeout_s=timeout,
        cors_origins=tuple(cors_origin or ()), allowed_hosts=allowed))
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    common.err().print(f"qa: serving {settings.index_dir} at http://{shown}:{port}/ (Ctrl-C stops)", markup=False)
    uvicorn.run(web, host=host, port=port, log_level="info")
