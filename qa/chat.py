"""The interactive chat loop of `qa chat`: ask, see cited answers, inspect passages, change k."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from qa.errors import QAError
from qa.render import render_passages, render_result
from qa.schema import QAResult

HELP = """Type a question and press Enter.
  :passages  show the passages retrieved for the last question
  :k N       hand N passages to the reader (now {k})
  :help      this help
  exit       leave (or Ctrl-D / Ctrl-C)"""

EXIT_WORDS = {"exit", "quit", ":q", ":exit", ":quit"}


def prompt_reader(history_file: Path | None = None) -> Callable[[str], str]:
    """A line reader with editing and history (prompt_toolkit) when stdin is a terminal, else input()."""
    import sys

    if not sys.stdin.isatty():
        return input
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history = InMemoryHistory()
    if history_file is not None:
        try:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history = FileHistory(str(history_file))
        except OSError:
            pass
    session: PromptSession = PromptSession(history=history)
    return lambda prompt: session.prompt(prompt)


def chat_loop(
    ask_fn: Callable[[str, int], QAResult],
    console: Console,
    *,
    k: int,
    read: Callable[[str], str] = input,
    unsure_below: float = 0.0,
) -> int:
    """Run the chat until exit, EOF or Ctrl-C; returns the number of questions answered.

    Args:
        ask_fn: answers ``(question, k)``.
        console: where to print.
        k: passages handed to the reader at the start.
        read: reads one line given a prompt (input, or a prompt_toolkit session).
        unsure_below: an answer scoring below this is marked unsure.
    """
    console.print("[bold]qa chat[/bold] — ask about your documents. [dim]:help for commands, exit to leave.[/dim]")
    last: QAResult | None = None
    asked = 0
    while True:
        try:
            line = read("? ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        line = line.strip()
        if not line:
            continue
        if line.lower() in EXIT_WORDS:
            break
        if line == ":help":
            console.print(HELP.format(k=k), markup=False)
            continue
        if line == ":passages":
            console.print(render_passages(last.hits) if last else "Ask a question first.")
            continue
        if line.startswith(":k"):
            arg = line[2:].strip()
            if arg.isdigit() and int(arg) > 0:
                k = int(arg)
                console.print(f"Now handing {k} passages to the reader.")
            else:
                console.print(f"usage: :k N with N a positive number (now {k})")
            continue
        if line.startswith(":"):
            console.print(f"unknown command {line.split()[0]!r}; :help lists them", markup=False)
            continue
        try:
            last = ask_fn(line, k)
        except QAError as exc:
            console.print(f"error: {exc}", style="red", markup=False)
            continue
        except KeyboardInterrupt:
            console.print("(interrupted)")
            continue
        asked += 1
        console.print(render_result(last, unsure_below))
    console.print("Bye.")
    return asked
