"""The `qa` command line: a thin Typer layer over the library. Only here do errors become exit codes.

``common`` holds the app, the shared options, the consoles and the error handling; each ``cmd_*`` module holds
a group of commands (index; ask and chat; status, show and remove; eval and bench; serve; train-reader). Every
heavy import happens inside a command, so `qa --help` stays instant.
"""

from __future__ import annotations

from qa.cli import cmd_ask, cmd_eval, cmd_index, cmd_inspect, cmd_serve, cmd_train  # noqa: F401 (registers them)
from qa.cli.common import app

#: The order `qa --help` lists the commands in: the everyday ones first.
ORDER = ("index", "ask", "chat", "status", "show", "remove", "eval", "bench", "serve", "train-reader")
app.registered_commands.sort(key=lambda c: ORDER.index(c.name or c.callback.__name__))

__all__ = ["app", "main"]


def main() -> None:
    """Entry point for `python -m qa`."""
    app()
