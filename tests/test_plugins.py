"""Bring your own model or dataset: an installed plugin (a real `.dist-info` with entry_points.txt on sys.path) and an
`--include` file each register a model that `idcbench run` uses end to end; broken plugins and includes are one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from _cli import run_cli as run
from idcbench import scoring
from idcbench.data import load_dataset
from idcbench.errors import UserError
from idcbench.registry import Registry

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
METRICS = "BLEU-4,CIDEr-D"

PLUGIN = '''
"""A plugin distribution's code: a model that compares the two files and a dataset that reads a pairs file."""
import json
from pathlib import Path

from idcbench.captioner import Captioner
from idcbench.data import DatasetInfo
from idcbench.datasets.pairs import PairsLoader


class SameBytes(Captioner):
    """'no change' when the two image files are byte-identical, else 'something changed'."""

    trainable = False

    def caption(self, pairs):
        return ["no change" if Path(p.before).read_bytes() == Path(p.after).read_bytes() else "something changed"
                for p in pairs]

    def save(self, directory):
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text(json.dumps({"family": "same-bytes", "config": self.config}))

    @classmethod
    def load(cls, directory, **overrides):
        return cls(json.loads((Path(directory) / "config.json").read_text())["config"])


class OwnData:
    """The examples/own-data pairs file, as a named dataset of the plugin."""

    info = DatasetInfo(name="own-data", title="own data", citation="-", source="-", layout="pairs.jsonl")

    @staticmethod
    def load(root):
        return PairsLoader("pairs.jsonl").load(root)
'''

ENTRY_POINTS = """
[idcbench.models]
same-bytes = idcb_plugin_demo:SameBytes
broken-plugin = idcb_plugin_demo.missing:Nope
not-a-model = idcb_plugin_demo:OwnData

[idcbench.datasets]
own-data = idcb_plugin_demo:OwnData
"""


@pytest.fixture(autouse=True)
def restore_registries(monkeypatch):
    """Names registered by a test (an include) are gone after it: tests run in any order in one process."""
    from idcbench import plugins
    from idcbench.registry import DATASETS, MODELS

    for reg in (MODELS, DATASETS):
        reg.load()
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
        monkeypatch.setattr(reg, "_aliases", dict(reg._aliases))
    monkeypatch.setattr(plugins, "_included", {})


def install_plugin(site: Path, entry_points: str = ENTRY_POINTS) -> Path:
    """A distribution `idcb-plugin-demo 0.1` as pip would leave it: the package and its .dist-info."""
    (site / "idcb_plugin_demo").mkdir(parents=True)
    (site / "idcb_plugin_demo" / "__init__.py").write_text(PLUGIN)
    info = site / "idcb_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: idcb-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    return site


def idcbench(site: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "idcbench", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def expected_metrics(root: Path, predictions: dict[str, str]) -> dict:
    ds = load_dataset("pairs:pairs.jsonl", root)
    report = scoring.score(predictions, ds.references("test"), ds.subsets("test"), METRICS.split(","))
    return scoring.metrics_json(report)["subsets"]


def test_installed_plugin_model_and_dataset_run_end_to_end(tmp_path):
    site = install_plugin(tmp_path / "site")
    data = shutil.copytree(EXAMPLES / "own-data", tmp_path / "data")
    # listing names the plugin's entries without importing its code
    probe = ("import sys; from idcbench.registry import MODELS, DATASETS\n"
             "print(MODELS.entries('same-bytes')[0].description, 'own-data' in DATASETS, 'idcb_plugin_demo' in sys.modules)\n"
             "MODELS.get('same-bytes'); print('idcb_plugin_demo' in sys.modules, MODELS.entry('same-bytes').description)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True).stdout
    assert out.splitlines() == [
        "plugin idcb-plugin-demo 0.1 (idcb_plugin_demo:SameBytes) True False",
        "True 'no change' when the two image files are byte-identical, else 'something changed'."]

    result = idcbench(site, "run", "same-bytes", "--dataset", "own-data", "--data-root", data, "--runs-dir", "runs",
                      "--metrics", METRICS, "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "runs" / "own-data" / "same-bytes").iterdir()
    preds = {p["id"]: p["caption"] for p in map(json.loads, (run_dir / "predictions.jsonl").read_text().splitlines())}
    test = load_dataset("pairs:pairs.jsonl", data).examples("test")
    assert preds == {e.id: "no change" if e.before.read_bytes() == e.after.read_bytes() else "something changed"
                     for e in test}
    assert set(preds.values()) == {"no change", "something changed"}
    assert json.loads((run_dir / "metrics.json").read_text())["subsets"] == expected_metrics(data, preds)

    # a broken entry point fails alone, in one line naming the distribution and the entry point
    result = idcbench(site, "run", "broken-plugin", "--dataset", "own-data", "--data-root", data, cwd=tmp_path)
    line = one_error_line(result.stderr)
    assert result.returncode == 2
    for needle in ("plugin idcb-plugin-demo 0.1", "entry point broken-plugin = idcb_plugin_demo.missing:Nope",
                   "ModuleNotFoundError", "fix or uninstall idcb-plugin-demo 0.1"):
        assert needle in line, (needle, line)
    result = idcbench(site, "caption", "not-a-model", data / "images" / "p01_before.png",
                      data / "images" / "p01_after.png", cwd=tmp_path)
    assert result.returncode == 2
    assert "entry point not-a-model" in one_error_line(result.stderr)
    assert "expected a Captioner subclass or a ModelSpec, found class OwnData" in result.stderr


def test_plugin_name_clash_is_one_line(tmp_path):
    site = install_plugin(tmp_path / "site", "[idcbench.models]\nmost-frequent = idcb_plugin_demo:SameBytes\n")
    result = idcbench(site, "list", "models", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "plugin idcb-plugin-demo 0.1: entry point most-frequent" in line and "already registered" in line


def test_registry_loads_entry_points_lazily(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(install_plugin(tmp_path / "site")))
    reg: Registry = Registry("model", group="idcbench.models", adapt="idcbench.plugins:as_model")
    assert reg.names() == ["broken-plugin", "not-a-model", "same-bytes"]
    assert "idcb_plugin_demo" not in sys.modules
    spec = reg.get("same-bytes")
    assert spec.family.__name__ == "SameBytes" and spec.config == {}
    with pytest.raises(UserError, match="entry point broken-plugin .*ModuleNotFoundError"):
        reg.get("broken-plugin")
    with pytest.raises(UserError, match="entry point broken-plugin"):  # the same line again, not a KeyError
        reg.get("broken-plugin")
    sys.modules.pop("idcb_plugin_demo", None)


MODEL_PY = '''
"""A model in one file, added with --include."""
from pathlib import Path
import json

import numpy as np

from idcbench.captioner import Captioner, ModelSpec
from idcbench.data import load_image
from idcbench.registry import MODELS


class MeanShift(Captioner):
    """'brighter' / 'darker' / 'no change' from the mean pixel values of the two images."""

    trainable = False

    def caption(self, pairs):
        out = []
        for p in pairs:
            delta = float(np.asarray(load_image(p.after)).mean()) - float(np.asarray(load_image(p.before)).mean())
            out.append("no change" if abs(delta) < 1e-9 else ("brighter" if delta > 0 else "darker"))
        return out

    def save(self, directory):
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "config.json").write_text(json.dumps({"family": "mean-shift", "config": self.config}))

    @classmethod
    def load(cls, directory, **overrides):
        return cls()


MODELS.add("mean-shift", ModelSpec(MeanShift, {}), description="mean pixel shift (an --include test model)")
'''


def test_include_file_model_runs_end_to_end(tmp_path, capsys):
    import numpy as np
    from idcbench.data import load_image

    data = shutil.copytree(EXAMPLES / "own-data", tmp_path / "data")
    model = tmp_path / "mean_shift.py"
    model.write_text(MODEL_PY)
    code, out, err = run(capsys, "run", "mean-shift", "--include", model, "--dataset", "pairs:pairs.jsonl",
                         "--data-root", data, "--runs-dir", tmp_path / "runs", "--metrics", METRICS, "--device", "cpu")
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs" / "pairs_pairs.jsonl" / "mean-shift").iterdir()
    preds = {p["id"]: p["caption"] for p in map(json.loads, (run_dir / "predictions.jsonl").read_text().splitlines())}
    expected = {}
    for e in load_dataset("pairs:pairs.jsonl", data).examples("test"):
        delta = float(np.asarray(load_image(e.after)).mean()) - float(np.asarray(load_image(e.before)).mean())
        expected[e.id] = "no change" if abs(delta) < 1e-9 else ("brighter" if delta > 0 else "darker")
    assert preds == expected and len(set(preds.values())) >= 2
    assert json.loads((run_dir / "metrics.json").read_text())["subsets"] == expected_metrics(data, preds)
    # the saved model captions one pair through `idcbench caption`, the include given again
    e = load_dataset("pairs:pairs.jsonl", data).examples("test")[0]
    code, out, err = run(capsys, "caption", run_dir / "model", e.before, e.after, "--include", model)
    assert code == 0 and out.strip() == expected[e.id], err
    code, out, err = run(capsys, "score", run_dir, "--include", model, "--metrics", METRICS)  # rescoring needs it too
    assert code == 0 and json.loads((run_dir / "metrics.json").read_text())["subsets"] == expected_metrics(data, preds), err
    code, out, _ = run(capsys, "list", "models", "--include", model, "--pattern", "mean-*")
    assert code == 0 and "mean-shift" in out and "mean pixel shift" in out


def test_include_folder_of_py_and_json_variants(tmp_path, capsys):
    folder = shutil.copytree(EXAMPLES / "own-model", tmp_path / "own-model")
    (folder / "mf-flat.json").write_text(json.dumps({"family": "nearest-neighbour-tiny", "description": "5 neighbours",
                                                     "config": {"k": 5}}))
    from idcbench.plugins import include
    from idcbench.registry import MODELS

    assert include([folder]) == ["mf-flat", "pixel-diff", "pixel-diff-strict"]
    assert include([folder]) == ["mf-flat", "pixel-diff", "pixel-diff-strict"]  # once per process: no clash
    assert MODELS.get("pixel-diff-strict").config == {"threshold": 0.0, "changed": "something in the scene changed"}
    assert MODELS.get("pixel-diff-strict").family is MODELS.get("pixel-diff").family
    assert MODELS.get("mf-flat").config == {**MODELS.get("nearest-neighbour-tiny").config, "k": 5}
    assert MODELS.entry("mf-flat").source == f"--include {folder / 'mf-flat.json'}"


@pytest.mark.parametrize("name, text, needles", [
    ("syntax.py", "x = 1\ndef broken(:\n", ["syntax.py:2: syntax error"]),
    ("raises.py", "import os\n\nraise RuntimeError('no weights here')\n", ["raises.py:3: RuntimeError: no weights here"]),
    ("clash.py", "from idcbench.registry import MODELS\nMODELS.add('most-frequent', None)\n",
     ["clash.py:2: ValueError: model 'most-frequent' is registered twice"]),
    ("nofamily.json", '{"description": "d"}', ["nofamily.json: no \"family\""]),
    ("typo.json", '{"family": "most-frequnt", "description": "d"}', ["typo.json: family: unknown model 'most-frequnt'",
                                                                      "did you mean 'most-frequent'"]),
    ("badclass.json", '{"family": "json:JSONDecoder", "description": "d"}', ["is not a Captioner subclass"]),
    ("nomodule.json", '{"family": "no_such_module:X", "description": "d"}', ["cannot be imported"]),
    ("twice.json", '{"family": "most-frequent", "description": "d", "name": "clip4idc"}',
     ["model 'clip4idc' is registered twice; choose another \"name\""]),
    ("bad.json", '{"family": ', ["bad.json: line 1, column 12: invalid JSON"]),
    ("notes.txt", "", ["not a .py or .json file"]),
])
def test_include_errors_are_one_line_naming_the_file(tmp_path, capsys, name, text, needles):
    path = tmp_path / name
    path.write_text(text)
    code, _, err = run(capsys, "list", "models", "--include", path)
    assert code == 2
    line = one_error_line(err)
    assert f"--include {path}" in line
    for needle in needles:
        assert needle in line, (needle, line)


def test_include_missing_path_or_empty_folder(tmp_path, capsys):
    code, _, err = run(capsys, "run", "x", "--dataset", "shapes", "--include", tmp_path / "nowhere.py")
    assert code == 2 and "not found" in one_error_line(err)
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "caption", "x", EXAMPLES / "own-data" / "images" / "p01_before.png",
                       EXAMPLES / "own-data" / "images" / "p01_after.png", "--include", tmp_path / "empty")
    assert code == 2 and "the folder has no .py or .json file" in one_error_line(err)


def readme_section_commands() -> list[str]:
    """The `idcbench ...` lines of the README section "Add a model or a dataset" (its bash blocks)."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Add a model or a dataset", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("\n", 1)[1] for b in section.split("```")[1::2] if b.startswith("bash")]
    return [line.split("#")[0].strip() for b in blocks for line in b.splitlines() if line.startswith("idcbench ")]


def test_readme_commands_work_as_written(tmp_path, capsys, monkeypatch):
    import glob
    import shlex

    commands = readme_section_commands()
    assert len(commands) >= 5 and any("--include" in c for c in commands) and any("pairs:" in c for c in commands)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        args = shlex.split(command)[1:]
        args = [m for a in args for m in (sorted(glob.glob(a)) if "*" in a and "/" in a else [a])]  # bash globs paths
        code, out, err = run(capsys, *args)
        assert code == 0, (command, err)
    assert list((tmp_path / "runs").glob("*/*/*/DONE"))
