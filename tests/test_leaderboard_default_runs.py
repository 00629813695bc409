"""`idcbench leaderboard` without --runs-dir (issue 14, item 15): --check in a checkout compares the committed tables
with the light runs committed beside them (`leaderboard/runs`); writing builds from `runs` when it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from _cli import run_cli
from _fake_runs import clevr_like, predictions, write_run
from idcbench.tables import publish

ROOT = Path(__file__).resolve().parents[1]
RESAMPLES = ("--resamples", "20")


@pytest.fixture
def checkout(tmp_path, monkeypatch) -> Path:
    """A folder laid out like a checkout after `idcbench demo`: board/ with its light runs in board/runs."""
    ex = clevr_like(30)
    write_run(tmp_path / "board" / "runs", "shapes", "good", ex, predictions(ex, 0.8, seed=1))
    write_run(tmp_path / "board" / "runs", "shapes", "weak", ex, predictions(ex, 0.3, seed=2))
    publish.build_leaderboard(tmp_path / "board" / "runs", tmp_path / "board", resamples=20)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_defaults_to_the_runs_beside_the_leaderboard(checkout, capsys):
    code, out, err = run_cli(capsys, "leaderboard", "--check", "--out", "board", *RESAMPLES)
    assert code == 0, err
    assert "up to date" in out and "board/runs" in err


def test_check_prefers_the_runs_beside_the_leaderboard_over_runs(checkout, capsys):
    ex = clevr_like(30)
    write_run(checkout / "runs", "shapes", "other", ex, predictions(ex, 0.5, seed=3))  # the user's own runs
    code, out, err = run_cli(capsys, "leaderboard", "--check", "--out", "board", *RESAMPLES)
    assert code == 0, err
    # writing builds from the user's runs, and a check then names the runs it compared with
    code, out, err = run_cli(capsys, "leaderboard", "--out", "mine", *RESAMPLES)
    assert code == 0, err
    assert "| other |" in (checkout / "mine" / "README.md").read_text()
    assert "| good |" not in (checkout / "mine" / "README.md").read_text()
    code, out, err = run_cli(capsys, "leaderboard", "--check", "--out", "mine", *RESAMPLES)
    assert code == 0 and "runs: runs" in err, err


def test_writing_without_runs_falls_back_to_the_runs_beside_the_leaderboard(checkout, capsys):
    (checkout / "board" / "README.md").unlink()
    code, _, err = run_cli(capsys, "leaderboard", "--out", "board", *RESAMPLES)
    assert code == 0, err
    assert publish.check_leaderboard(checkout / "board" / "runs", checkout / "board", resamples=20) == []


def test_no_runs_anywhere_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args in (["--check"], []):
        code, out, err = run_cli(capsys, "leaderboard", "--out", "board", *args)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "board/runs" in err and "--runs-dir" in err
    assert not (tmp_path / "board").exists()  # nothing half-written


def test_check_in_this_checkout_uses_the_committed_runs(monkeypatch, capsys):
    if not (ROOT / "leaderboard" / "runs").is_dir():
        pytest.skip("no committed demo runs under leaderboard/runs")
    monkeypatch.chdir(ROOT)
    code, out, err = run_cli(capsys, "leaderboard", "--check")
    assert "runs: leaderboard/runs" in err and "not found" not in err
    stale = publish.check_leaderboard(ROOT / "leaderboard" / "runs", ROOT / "leaderboard")
    assert code == (1 if stale else 0), err
