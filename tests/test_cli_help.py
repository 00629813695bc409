"""Every command's --help reads cleanly, and the options every command shares agree (issue 14, item 15).

Typer prints ``--force <bool>``, ``--metrics <list[str]>`` and ``Usage: ... {predictions}``; `idcbench.cli_help`
fixes that on the click command that ``main`` runs, so these tests go through ``main`` as a user's shell does.
"""

from __future__ import annotations

import inspect
import re

import pytest
import typer

from idcbench.cli import _load_commands, app
from idcbench.cli_help import DEVICE_HELP, readable_help
from _cli import run_cli


def _click_commands() -> dict[tuple[str, ...], object]:
    """Every (sub)command of the polished click command that `main` runs, by its path."""
    _load_commands()
    out: dict[tuple[str, ...], object] = {}

    def walk(cmd, prefix: tuple[str, ...]) -> None:
        out[prefix] = cmd
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, prefix + (name,))

    walk(readable_help(typer.main.get_command(app)), ())
    return out


PATHS = list(_click_commands())


def test_every_command_is_walked():
    names = {" ".join(p) for p in PATHS}
    assert {"run", "eval", "caption", "compare", "leaderboard", "report", "list", "doctor", "demo", "score",
            "pretrain-clip", "data", "data synth", "data info", "data verify"} <= names


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # one line per option: a type cut by wrapping could hide a bad one
    monkeypatch.delenv("FORCE_COLOR", raising=False)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "idcbench")
def test_help_shows_no_typer_internals(capsys, wide, path):
    code, out, err = run_cli(capsys, *path, "--help")
    assert code == 0, err
    assert "<bool>" not in out
    assert "list[" not in out
    assert "\\[" not in out  # escaped help text renders as plain text
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    for line in out.splitlines():  # a flag takes no value: no type beside it
        assert not re.search(r"--(help|force|check|train|allow-partial|version)\s+<", line), line


def test_usage_lines_read_like_unix(capsys, wide):
    _, out, _ = run_cli(capsys, "eval", "--help")
    assert "eval [OPTIONS] PREDICTIONS [DISTRACTORS]" in out
    _, out, _ = run_cli(capsys, "compare", "--help")
    assert "compare [OPTIONS] [RUN_DIRS]..." in out
    assert re.search(r"RUN_DIRS\.\.\.\s+<path>", out)
    _, out, _ = run_cli(capsys, "caption", "--help")
    assert "caption [OPTIONS] MODEL BEFORE AFTER" in out


def test_repeatable_options_show_what_one_value_is(capsys, wide):
    _, out, _ = run_cli(capsys, "run", "--help")
    assert re.search(r"--metrics\s+-m\s+<names>", out), out
    assert re.search(r"--config\s+-c\s+<key=value>", out), out
    assert re.search(r"--include\s+<path>", out), out
    _, out, _ = run_cli(capsys, "eval", "--help")
    assert re.search(r"--metrics\s+-m\s+<names>", out), out


def test_help_text_is_plain_text_not_rich_markup(capsys, wide):
    # rich markup would swallow "[default: ...]" written in a help string
    _, out, _ = run_cli(capsys, "compare", "--help")
    assert "[default: table on a terminal, else md]" in out
    assert re.search(r"--format\s+<format>", out)


def test_missing_argument_error_names_it_as_the_usage_line_does(capsys):
    code, _, err = run_cli(capsys, "report")
    assert code == 2 and "RUN_DIR" in err


def test_every_metrics_option_has_short_m():
    commands = _click_commands()
    with_metrics = {p: c for p, c in commands.items() if any(x.name == "metrics" for x in c.params)}
    assert {("run",), ("eval",), ("score",)} <= set(with_metrics)
    for path, cmd in with_metrics.items():
        opts = next(x for x in cmd.params if x.name == "metrics").opts
        assert "-m" in opts and "--metrics" in opts, (path, opts)


def test_run_dash_m_is_metrics(capsys, tmp_path):
    # validated before any work (no dataset generated, no run directory)
    code, _, err = run_cli(capsys, "run", "most-frequent", "--dataset", "shapes", "--runs-dir", tmp_path / "runs",
                           "-m", "CIDEr-Z")
    assert code == 2 and "unknown metric 'CIDEr-Z'" in err and "CIDEr-D" in err, err
    assert not (tmp_path / "runs").exists()


def test_one_device_default_everywhere():
    commands = _click_commands()
    with_device = {p: next(x for x in c.params if x.name == "device") for p, c in commands.items()
                   if any(x.name == "device" for x in c.params)}
    assert {("run",), ("score",), ("caption",), ("demo",), ("pretrain-clip",)} <= set(with_device)
    for path, param in with_device.items():
        assert param.default == "auto", (path, param.default)
        assert param.help.startswith(DEVICE_HELP), (path, param.help)
    from idcbench.demo import run_demo
    from idcbench.run import RunRequest

    assert inspect.signature(run_demo).parameters["device"].default == "auto"
    assert RunRequest.__dataclass_fields__["device"].default == "auto"


def test_auto_device_resolves_to_what_torch_sees():
    import torch

    from idcbench.run.request import resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
