"""The generic registry: registration, lookup, did-you-mean errors, patterns, plugin loading."""

import pytest

from idcbench.errors import UserError
from idcbench.registry import DATASETS, METRICS, MODELS, Registry


def test_register_and_get_with_decorator_and_alias():
    reg: Registry[type] = Registry("widget")

    @reg.register("blue-widget", aliases=("blue-widgets",))
    class Blue:
        """A blue widget. More text."""

    assert reg.get("blue-widget") is Blue
    assert reg.get("blue-widgets") is Blue
    assert reg.entry("blue-widget").description == "A blue widget. More text."
    assert "blue-widget" in reg and "blue-widgets" in reg and "red" not in reg


def test_unknown_name_suggests_closest():
    reg: Registry[int] = Registry("model")
    reg.add("clip4idc", 1)
    reg.add("clip4idc-tiny", 2)
    reg.add("most-frequent", 3)
    with pytest.raises(UserError) as err:
        reg.get("clip4dic")
    message = str(err.value)
    assert message.startswith("unknown model 'clip4dic'; did you mean 'clip4idc'")
    assert "\n" not in message
    with pytest.raises(UserError, match=r"unknown model 'zzz' \(known: clip4idc, clip4idc-tiny, most-frequent\)"):
        reg.get("zzz")


def test_duplicate_registration_is_a_programming_error():
    reg: Registry[int] = Registry("metric")
    reg.add("a", 1, aliases=("b",))
    with pytest.raises(ValueError):
        reg.add("b", 2)
    with pytest.raises(ValueError):
        reg.add("a", 3)


def test_patterns_and_listing_order():
    reg: Registry[int] = Registry("dataset")
    for name in ["shapes", "clevr-change", "spot-the-diff", "ier"]:
        reg.add(name, 0)
    assert reg.names() == ["clevr-change", "ier", "shapes", "spot-the-diff"]
    assert reg.names("s*") == ["shapes", "spot-the-diff"]
    assert [e.name for e in reg.entries("*-*")] == ["clevr-change", "spot-the-diff"]


def test_project_registries_load_their_plugins():
    # Importing the plugin packages must register at least the reference model, a dataset and the COCO metrics.
    assert "clip4idc" in MODELS.names()
    assert "shapes" in DATASETS.names()
    assert "CIDEr-D" in METRICS.names()


def test_listing_models_imports_no_model_code():
    """`idcbench list models` reads names and descriptions only: torch and open_clip load when a model is built."""
    import subprocess
    import sys

    code = ("import sys, idcbench.models\n"
            "from idcbench.registry import MODELS\n"
            "assert len(MODELS.names()) >= 11 and all(e.description for e in MODELS.entries())\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'idcbench.models.clip4idc.captioner') if m in sys.modules))\n"
            "from idcbench.factory import create_model\n"
            "create_model('clip4idc-tiny', pretrained=None)\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'idcbench.models.clip4idc.captioner') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "['idcbench.models.clip4idc.captioner', 'open_clip', 'torch']"
