"""What a run directory records besides its results: ``run_spec.json`` (the hashed spec and what is recorded but
not hashed) and ``env.json`` (software versions, device, CPU)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from idcbench import __version__, rundir
from idcbench.distributed import DistInfo
from idcbench.run.request import Prepared


def _git_commit() -> str | None:
    repo = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _java_version() -> str | None:
    from idcbench.metrics._java import java_version_text

    java = shutil.which("java")
    return java_version_text(java) if java else None


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _verbose_lines(fn: Any) -> str:
    """What the native libraries print to file descriptor 1 while `fn` runs (their verbose modes write there)."""
    import sys
    import tempfile

    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            fn()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode("utf-8", errors="replace")


def kernel_isa() -> dict[str, Any]:
    """The instruction sets torch dispatches to on this CPU: ATen's vectorised kernels, MKL (BLAS) and oneDNN, as
    their verbose modes report them (training is bit-identical only on the same ones; see the README)."""
    import torch

    out: dict[str, Any] = {"cpu": cpu_model(), "aten": torch.backends.cpu.get_cpu_capability()}

    def mkl() -> None:
        with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
            torch.ones(64, 64) @ torch.ones(64, 64)

    def onednn() -> None:
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            torch.nn.functional.conv2d(torch.ones(8, 16, 32, 32), torch.ones(16, 16, 3, 3))

    try:
        text = _verbose_lines(mkl) if torch.backends.mkl.is_available() else ""
        out["mkl"] = next((ln.split(" ", 1)[1].strip() for ln in text.splitlines()
                           if ln.startswith("MKL_VERBOSE") and "SGEMM" not in ln), None)
        text = _verbose_lines(onednn) if torch.backends.mkldnn.is_available() else ""
        out["onednn"] = next((ln.rsplit("isa:", 1)[1].strip() for ln in text.splitlines() if ",isa:" in ln), None)
    except (OSError, RuntimeError):
        out.setdefault("mkl", None)
        out.setdefault("onednn", None)
    out["env"] = {k: v for k, v in os.environ.items()
                  if k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
                           "OMP_NUM_THREADS")}
    return out


def environment(device: str, info: DistInfo) -> dict[str, Any]:
    """What env.json records: software versions and the device (not hashed: it does not change the result)."""
    import torch

    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return {
        "idcbench": __version__, "git_commit": _git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "open_clip": _version("open_clip_torch"), "pycocoevalcap": _version("pycocoevalcap"),
        "java": _java_version(), "device": dev, "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
        "world_size": info.world_size, "launcher": info.launcher, "cpu_isa": kernel_isa(),
    }


def write_run_files(p: Prepared, *, num_shards: int | None = None) -> None:
    """``run_spec.json`` (the hashed spec and what is recorded beside it, not hashed: results are identical across
    these) and ``env.json``."""
    rundir.write_spec(p.run_dir, p.spec.hash, p.spec.to_dict(), {
        "world_size": p.info.world_size, "num_shards": num_shards, "batch_size": p.request.batch_size,
        "data_root": str(p.dataset.root), "device": p.device, "metrics": p.request.metrics,
        "runtime_config": p.runtime,
    })
    rundir.write_env(p.run_dir, environment(p.device, p.info))
