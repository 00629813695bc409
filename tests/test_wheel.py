"""idcbench installed as users install it: a wheel built from this checkout, installed without the editable hook into
a fresh environment, every command run from outside the checkout.

The fresh environment reuses this environment's dependencies (a ``.pth`` line naming its site-packages: a plain
path, so the editable hook there is never executed), but `idcbench` itself comes only from the wheel. Each command
must exit 0 and print what the editable install prints for the same command in the same folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# import roots of the distribution: folder -> import name (pyproject.toml / setup.py)
ROOTS = {"idcbench": "idcbench", "models": "idcbench.models", "datasets": "idcbench.datasets"}
LEADERBOARD = ROOT / "leaderboard"


def _module_path(path: Path) -> str:
    """Where a file of the checkout lands in the wheel: ``models/x/y.json`` -> ``idcbench/models/x/y.json``."""
    folder, *rest = path.relative_to(ROOT).parts
    return "/".join(ROOTS[folder].split(".") + rest)


def _tracked_files() -> list[Path]:
    """The files of the three import roots that git tracks (every file there, when this is not a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", *ROOTS], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        files = [ROOT / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):
        files = [p for folder in ROOTS for p in (ROOT / folder).rglob("*") if p.is_file()]
    return [f for f in files if "__pycache__" not in f.parts and f.suffix != ".pyc" and f.exists()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(ROOT), "-w", str(out)],
                   check=True, capture_output=True)
    (whl,) = out.glob("idcbench-*.whl")
    return whl


def test_wheel_holds_every_package_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = [p.parent for folder in ROOTS for p in (ROOT / folder).rglob("__init__.py")]
    missing_packages = [str(p.relative_to(ROOT)) for p in packages if _module_path(p / "__init__.py") not in names]
    assert missing_packages == [], f"packages missing from the wheel: {missing_packages}"
    missing_files = [str(f.relative_to(ROOT)) for f in _tracked_files() if _module_path(f) not in names]
    assert missing_files == [], f"files missing from the wheel: {missing_files}"
    # what commands need at run time, by name: variant configs, prompts, the shipped tiny CLIP, published rows
    for needed in ("idcbench/models/clip4idc/configs/clip4idc-tiny.json", "idcbench/models/vlm/prompts/postprocess.json",
                   "idcbench/models/tinyclip/weights/idc-tiny-vit-tiny.safetensors", "idcbench/data/published.json"):
        assert needed in names


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh environment with the wheel installed; returns its ``idcbench`` command."""
    env = tmp_path_factory.mktemp("env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    (site,) = env.glob("lib/python*/site-packages")
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    where = subprocess.run([str(env / "bin" / "python"), "-c", "import idcbench.tables; print(idcbench.__file__)"],
                           capture_output=True, text=True, cwd=env, check=True).stdout.strip()
    assert Path(where).is_relative_to(site) and not Path(where).is_relative_to(ROOT), where
    return env / "bin" / "idcbench"


@pytest.fixture(scope="module")
def outside(tmp_path_factory, shapes_data) -> Path:
    """A working folder outside the checkout, with copies of the inputs the commands read."""
    work = tmp_path_factory.mktemp("outside")
    shutil.copytree(ROOT / "examples" / "own-data", work / "own-data")
    shutil.copytree(LEADERBOARD, work / "leaderboard")
    (work / "preds.jsonl").write_text("".join(
        f'{{"id": "p{i:02d}", "caption": "the {c} square moved"}}\n'
        for i, c in zip(range(7, 11), ["red", "blue", "green", "red"])))
    return work


def _run(command: list[str], args: list[str], cwd: Path, data: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(IDCBENCH_DATA=str(data), COLUMNS="200", NO_COLOR="1")
    return subprocess.run(command + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _commands() -> list[tuple[str, list[str]]]:
    run = next(p for p in (LEADERBOARD / "runs" / "shapes" / "clip4idc-tiny").iterdir() if p.is_dir())
    own_model = ROOT / "examples" / "own-model" / "pixel_diff.py"
    return [
        ("list", ["list", "models"]),
        ("eval", ["eval", "preds.jsonl", "--dataset", "pairs:own-data/pairs.jsonl", "--split", "test",
                  "-m", "BLEU-4,ROUGE-L,CIDEr-D"]),
        ("compare", ["compare", "--runs-dir", str(LEADERBOARD / "runs")]),
        ("leaderboard", ["leaderboard", "--runs-dir", str(LEADERBOARD / "runs"), "--out", "{out}/board"]),
        ("leaderboard --check", ["leaderboard", "--check", "--out", "leaderboard"]),
        ("report", ["report", str(run), "--out", "{out}/report.html"]),
        ("caption", ["caption", "pixel-diff", "--include", str(own_model), "own-data/images/p07_before.png",
                     "own-data/images/p07_after.png"]),
        ("doctor", ["doctor"]),
    ]


@pytest.mark.parametrize("name,args", _commands(), ids=[name for name, _ in _commands()])
def test_command_from_the_wheel_prints_what_the_checkout_prints(name, args, installed, outside, shapes_data):
    results = {}
    for label, command in (("wheel", [str(installed)]), ("checkout", [sys.executable, "-m", "idcbench"])):
        out = outside / label
        out.mkdir(exist_ok=True)
        done = _run(command, [a.replace("{out}", str(out)) for a in args], outside, shapes_data)
        assert done.returncode == 0, f"{label}: idcbench {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        results[label] = done.stdout.replace(str(out), "<out>")
    assert results["wheel"] == results["checkout"]
    assert results["wheel"].strip(), f"idcbench {' '.join(args)} printed nothing"
    if name == "leaderboard":  # the files it writes, too
        for f in sorted((outside / "checkout" / "board").rglob("*")):
            if f.is_file():
                twin = outside / "wheel" / "board" / f.relative_to(outside / "checkout" / "board")
                assert twin.read_bytes() == f.read_bytes(), f"{twin} differs"
