"""`idcbench caption MODEL BEFORE AFTER`: caption one image pair with a registered model and its weights.

MODEL is a registered model name (``--init`` then gives its weights: an official CLIP4IDC checkpoint, an idcbench
``model.pt`` or a saved model directory) or directly a saved model directory (a run's ``model/`` folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from idcbench.cli import app, console
from idcbench.cli_help import DEVICE_HELP
from idcbench.plugins import INCLUDE_HELP


def load_captioner(model: str, init: Optional[str], overrides: dict):
    """A ready captioner from a registered name (+ ``--init``) or a saved model directory (`idcbench.factory`)."""
    from idcbench import factory
    from idcbench.errors import UserError

    path = Path(model).expanduser()
    if path.is_dir():  # a run's model/ folder: it says which model saved it
        name = factory.saved_variant(path)
        if name is None:
            raise UserError(f"{path}: not a model folder idcbench saved (no {factory.MARKER} or config.json naming "
                            "its model); give a registered model name and --init this folder")
        return factory.load(path, name, overrides=overrides)
    spec, config = factory.resolve(model, overrides)
    if init is not None:
        return factory.from_init(Path(init).expanduser(), model, overrides=overrides, config=config)
    if not overrides.get("init") and spec.family.trains(config):
        raise UserError(f"{model} learns its weights in training: pass --init CKPT (a checkpoint or a saved model "
                        f"folder), or give a run's model folder as MODEL (runs/<dataset>/{model}/<hash>/model)")
    return spec.family(config)


@app.command("caption")
def caption(
    model: str = typer.Argument(..., help="registered model name (see `idcbench list models`) or a saved model directory"),
    before: Path = typer.Argument(..., help="the before image"),
    after: Path = typer.Argument(..., help="the after image"),
    init: Optional[str] = typer.Option(None, "--init", help="weights: official CLIP4IDC checkpoint, model.pt or model directory"),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="open_clip backbone (config key `backbone`)"),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="open_clip tag or weights file (config key `pretrained`)"),
    beam: Optional[int] = typer.Option(None, "--beam", help="beam search with this width instead of greedy decoding"),
    config: Optional[List[str]] = typer.Option(None, "--config", "-c", metavar="<key=value>", help="KEY=VALUE config overrides (JSON values; a.b=1 sets a nested key)"),
    include: List[Path] = typer.Option([], "--include", help=INCLUDE_HELP),
) -> None:
    """Caption one image pair and print the caption."""
    from idcbench.data import Pair, load_image
    from idcbench.errors import UserError
    from idcbench.plugins import include as include_paths

    include_paths(include)

    for p in (before, after):
        load_image(p)  # one clear line for a missing / broken image before any model is built
    from idcbench.run import parse_config
    from idcbench.run.request import resolve_device

    device = resolve_device(device)  # auto -> cuda or cpu; an unusable device is refused before the model is built

    overrides = parse_config(config or [])  # the same KEY=JSON (dotted keys nest) as `idcbench run --config`
    if backbone is not None:
        overrides["backbone"] = backbone
    if pretrained is not None:
        overrides["pretrained"] = pretrained
    if beam is not None:
        overrides["decoding"] = {"strategy": "beam", "beam": beam}
    captioner = load_captioner(model, init, overrides)
    try:
        captioner = captioner.to(device)
    except (RuntimeError, AssertionError) as e:
        raise UserError(f"--device {device}: {str(e).splitlines()[0]}") from None
    text = captioner.caption([Pair(before, after)])[0]
    console.print(text, highlight=False, markup=False, soft_wrap=True)
