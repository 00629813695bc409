"""The `idcbench` command line: a thin Typer app. It parses, calls library functions and prints with rich.

Commands live in `idcbench/commands/` (one module per area) and attach themselves to `app`. Every `UserError`
ends as one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import errno
import importlib

import typer
from rich.console import Console

from idcbench import __version__
from idcbench.cli_help import readable_help
from idcbench.errors import EXIT_USER_ERROR, UserError

app = typer.Typer(
    name="idcbench",
    help="Benchmark and evaluation harness for Image Difference Captioning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True)

COMMAND_MODULES = ("info", "eval", "data", "run", "caption", "leaderboard", "demo", "pretrain")


def _version(value: bool) -> None:
    if value:
        console.print(f"idcbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Benchmark and evaluation harness for Image Difference Captioning."""


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"idcbench.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"idcbench.commands.{name}":
                raise


def fail(message: str) -> None:
    """Print one error line and exit 2."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(EXIT_USER_ERROR)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `idcbench` script and of `python -m idcbench`."""
    _load_commands()
    command = readable_help(typer.main.get_command(app))  # the click command `app(...)` would build, polished
    try:
        # standalone mode: click itself reports usage errors (exit 2) and handles --help; our errors pass through.
        command(args=argv, standalone_mode=True)
    except UserError as e:
        fail(str(e))
    except OSError as e:
        if e.errno == errno.ENOSPC:
            fail(f"no space left on device{f' writing {e.filename}' if e.filename else ''}; free disk space and "
                 "rerun the same command (saved work is kept)")
        raise
    except KeyboardInterrupt:  # Ctrl-C before or after the command (typer turns one inside it into exit 130)
        interrupted()
    except SystemExit as e:
        if e.code == 130 and _caused_by_ctrl_c(e):
            interrupted()
        raise


INTERRUPTED = "interrupted (Ctrl-C); saved work is kept: rerun the same command to resume"


def interrupted() -> None:
    """Ctrl-C: one line that says the same command resumes, exit code 130 (128 + SIGINT), as a shell expects."""
    err_console.print(f"[yellow]{INTERRUPTED}[/]", highlight=False, soft_wrap=True)
    raise SystemExit(130)


def _caused_by_ctrl_c(e: BaseException) -> bool:
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
