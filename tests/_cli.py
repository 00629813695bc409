"""Run the `idcbench` CLI in the test process, as a user would from the shell; a free port for torchrun."""

from __future__ import annotations

import socket

import pytest

from idcbench.cli import main


def run_main(args: list[object]) -> int:
    """`idcbench ARGS` -> exit code (`main` always exits: click's standalone mode)."""
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return int(e.code or 0)
    raise AssertionError("idcbench.cli.main returned without exiting")


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """`idcbench ARGS` -> (exit code, stdout, stderr)."""
    code = run_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    """A TCP port nobody listens on now (for ``torchrun --master-port``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
