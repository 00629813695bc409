"""The committed demo leaderboard (`leaderboard/`) is exactly what its committed run metrics give.

CI cannot afford a fresh demo run on every change, so it checks the weaker, still exact property: the tables under
`leaderboard/` regenerate byte for byte from the light run files under `leaderboard/runs/`.
"""

from pathlib import Path

import pytest

from idcbench.tables.publish import check_leaderboard

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "leaderboard"


def test_committed_leaderboard_regenerates_from_its_runs():
    if not (BOARD / "runs").is_dir():
        pytest.skip("no committed demo runs under leaderboard/runs (run `make demo` and commit leaderboard/)")
    assert check_leaderboard(BOARD / "runs", BOARD) == []
