"""benchmarks/gpu_check.py --dry-run: every part of the GPU check runs with tiny sizes on the CPU and writes its table."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_dry_run_writes_every_part(tmp_path, capsys):
    main = runpy.run_path(str(GPU_CHECK))["main"]
    assert main(["--dry-run", "--out", str(tmp_path / "gpu.json")]) == 0
    result = json.loads((tmp_path / "gpu.json").read_text())
    parts = [r["part"][:3] for r in result["rows"]]
    assert parts == ["(a)", "(b)", "(b)", "(c)", "(d)", "(d)"]
    assert all(r["seconds"] > 0 and r["rate"] > 0 for r in result["rows"])
    assert result["rows"][3]["rate"] == 1.0  # float32 captions on the same device agree with themselves
    assert "| (a) caption" in capsys.readouterr().out
