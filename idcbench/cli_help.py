"""Readable ``--help`` for every command, applied once to the click command that Typer builds.

Typer prints a type beside every parameter and wraps arguments in braces: ``--force <bool>``, ``--metrics
<list[str]>``, ``Usage: idcbench eval [OPTIONS] {predictions}``. This pass keeps the value types (``<str>``,
``<int>``, ``<path>``) and fixes the rest: flags show no type, a repeatable option shows the type of one value (or
the metavar its declaration gives, e.g. ``<names>``), arguments read ``PREDICTIONS [DISTRACTORS]`` as in any Unix
usage line, and help texts are plain text (a ``[default: ...]`` written in a help string is shown, not read as rich
markup).

>>> usage_name("run_dirs", required=False, many=True)
'[RUN_DIRS]...'
>>> usage_name("predictions", required=True, many=False)
'PREDICTIONS'
>>> one_value("<list[Path]>")
'<path>'
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator

from rich.markup import escape

# One --device for every command that runs a model (`idcbench.run.request.resolve_device` reads it).
DEVICE_HELP = "auto (cuda when torch sees a GPU, else cpu), cpu, cuda or cuda:N."


def usage_name(name: str, *, required: bool, many: bool) -> str:
    """How an argument reads in the usage line: ``NAME``, ``[NAME]``, ``[NAME]...``."""
    text = name.upper() if required else f"[{name.upper()}]"
    return text + ("..." if many else "")


def one_value(type_text: str) -> str:
    """The type of one value of a list parameter: ``<list[str]>`` -> ``<str>`` (anything else unchanged)."""
    m = re.fullmatch(r"<list\[(.+)\]>(?:\.\.\.)?", type_text)
    return f"<{m.group(1).lower()}>" if m else type_text


def _commands(command: Any) -> Iterator[Any]:
    yield command
    for sub in (getattr(command, "commands", None) or {}).values():
        yield from _commands(sub)


def _params(command: Any) -> list[Any]:
    """The command's parameters and its --help option (click creates that one lazily, from a context)."""
    params = list(command.params)
    help_option = command.get_help_option(command.context_class(command))
    return params + ([help_option] if help_option is not None else [])


def _one_value_type(param: Any) -> Callable[[Any], str | None] | None:
    """A replacement for Typer's ``display_type_rich`` that shows one value of a list (None: nothing to replace)."""
    original = getattr(param, "display_type_rich", None)
    if original is None:  # an older Typer that prints click's metavars (TEXT, PATH): nothing to fix
        return None

    def display_type_rich(ctx: Any) -> str | None:
        text = original(ctx)
        return one_value(text) if text else text

    return display_type_rich


def _polish_argument(param: Any) -> None:
    many, name = param.nargs != 1, param.metavar or param.name  # a declared metavar names the argument
    # the help panel's name column and click's errors ("Missing argument 'MODEL'") read the metavar
    param.metavar = name.upper() + ("..." if many else "")
    usage = usage_name(name, required=param.required, many=many)
    param.get_usage_pieces = lambda ctx: [usage]
    if many and (display := _one_value_type(param)) is not None:
        param.display_type_rich = display


def _polish_option(param: Any) -> None:
    if param.is_flag or getattr(param, "count", False):
        param.metavar = ""  # a flag takes no value: no <bool> beside it
    elif (param.multiple or param.nargs != 1) and param.metavar is None:
        if (display := _one_value_type(param)) is not None:
            param.display_type_rich = display


def readable_help(command: Any) -> Any:
    """Polish every (sub)command of ``command`` in place (see the module docstring); returns it."""
    for cmd in _commands(command):
        if cmd.help:
            cmd.help = escape(cmd.help)
        for param in _params(cmd):
            if getattr(param, "help", None):
                param.help = escape(param.help)
            if param.param_type_name == "argument":
                _polish_argument(param)
            elif param.param_type_name == "option":
                _polish_option(param)
    return command
