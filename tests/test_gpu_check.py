"""benchmarks/gpu_check.py --dry-run: every part of the GPU check runs with tiny sizes on the CPU (decoding workers,
the image cache, the end-to-end `idcbench run`, the tiny demo models, the step profile) and writes its table."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_dry_run_writes_every_part(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IDCBENCH_CACHE", str(tmp_path / "cache"))
    main = runpy.run_path(str(GPU_CHECK))["main"]
    assert main(["--dry-run", "--out", str(tmp_path / "gpu.json")]) == 0
    result = json.loads((tmp_path / "gpu.json").read_text())
    rows = result["rows"]
    assert [r["what"] for r in rows if r["what"].startswith(("failed", "skipped"))] == []
    assert sorted({r["part"] for r in rows}) == ["a", "b1", "b2", "c", "d", "e", "f", "g", "h"]
    assert all(r["seconds"] > 0 and r["rate"] > 0 for r in rows)
    assert [r["rate"] for r in rows if r["part"] == "c"] == [1.0]  # float32 captions on the same device agree
    sources = [r["what"].rsplit("from ", 1)[1] for r in rows if r["part"] == "b1"]
    assert sources == ["PNG files", "the image cache"]
    assert {r["what"].split()[0] for r in rows if r["part"] == "e"} == {"clip4idc-tiny", "clip-diff-tiny", "duda-tiny"}
    assert any("end to end" in r["what"] for r in rows if r["part"] == "f")
    out = capsys.readouterr().out
    assert "| a | caption" in out and "| forward |" in out
