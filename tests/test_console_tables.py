"""Tables on the console never cut a number: rich tables fold at 80 columns; through a pipe, plain Markdown."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from _cli import run_cli
from _fake_runs import clevr_like, predictions, write_run
from idcbench.commands._grid import Grid, print_grid, table_grid
from idcbench.tables.build import compare
from idcbench.tables.model import format_cell, format_p
from idcbench.tables.runs import discover_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    ex = clevr_like(60)
    for s in (0, 1):
        write_run(root, "clevr-change", "clip4idc-tiny-with-a-long-configuration-label", ex,
                  predictions(ex, 0.8, seed=s), seed=s)
    write_run(root, "clevr-change", "most-frequent", ex, {e[0]: "there is no change" for e in ex})
    return root


def _numbers(tables) -> list[str]:
    out = []
    for t in tables:
        for r in t.rows:
            out += [format_cell(r.cells.get(c)) for c in t.columns]
            out += [format_p(r.p_value)] if r.p_value is not None else []
    return out


def _tokens(cell: str) -> list[str]:
    return re.findall(r"<?[\d.]+", cell)


def test_rich_tables_at_80_columns_fold_and_keep_every_number_whole(runs):
    tables = compare(discover_runs(runs), baseline="most-frequent", resamples=50)
    buf = io.StringIO()
    console = Console(file=buf, width=80, force_terminal=True, color_system=None)
    for t in tables:
        print_grid(console, table_grid(t), "table")
    text = buf.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    words = set(re.findall(r"<?[\d.]+", text))
    for cell in _numbers(tables):
        for number in _tokens(cell):
            assert number in words, (number, text)
    assert "(1/" in text  # the columns did not fit: the table was folded, not squeezed


def test_compare_through_a_pipe_prints_markdown_and_format_still_chooses(runs, capsys):
    code, out, err = run_cli(capsys, "compare", "--runs-dir", runs, "--baseline", "most-frequent", "--resamples", "50")
    assert code == 0, err
    assert out.startswith("### clevr-change (test, total)") and "| Model | Type | Seeds |" in out
    assert "…" not in out and "0.…" not in out
    code, out, err = run_cli(capsys, "compare", "--runs-dir", runs, "--baseline", "most-frequent", "--resamples", "50",
                             "--format", "table")
    assert code == 0 and "┏" in out and "…" not in out
    tables = compare(discover_runs(runs), baseline="most-frequent", resamples=50)
    words = set(re.findall(r"<?[\d.]+", out))
    assert all(n in words for cell in _numbers(tables) for n in _tokens(cell))


def test_eval_and_run_tables_keep_subset_names_through_a_pipe(capsys):
    from idcbench.commands.run import print_metrics

    long = "hard-iou-lowest-quarter-of-the-split"
    metrics = {"subsets": {"total": {"n": 7970, "metrics": {"BLEU-4": 53.214, "CIDEr-D": 112.3456}},
                           long: {"n": 797, "metrics": {"BLEU-4": 41.0, "CIDEr-D": 98.7654}}}}
    print_metrics(metrics, "clip4idc on clevr-change test")
    out = capsys.readouterr().out
    assert f"| {long} | 797 | 41.00 | 98.77 |" in out and "| total | 7970 | 53.21 | 112.35 |" in out
    buf = io.StringIO()
    grid = Grid("t", ["subset", "n", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"],
                [[long, "797", "71.23", "55.55", "44.44", "33.33", "29.99", "66.66", "123.45"]], keys=2)
    print_grid(Console(file=buf, width=80, force_terminal=True, color_system=None), grid)
    text = buf.getvalue()
    assert "…" not in text and all(v in text for v in grid.rows[0][1:])
    assert long in "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))


def test_run_prints_retrieval_counts_as_integers(capsys):
    from idcbench.commands.run import print_metrics

    metrics = {"subsets": {"total": {"n": 300, "metrics": {"CIDEr-D": 58.3}}},
               "retrieval": {"t2p_R@1": 0.3333, "t2p_MedR": 72, "n_captions": 1800.0, "n_pairs": 300.0,
                             "subset": "semantic"}}
    print_metrics(metrics, "clip4idc-tiny on shapes test")
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("retrieval:"))
    assert line == "retrieval: t2p_R@1 0.33  t2p_MedR 72  n_captions 1800  n_pairs 300  subset semantic"


def test_demo_prints_the_leaderboard_tables_whole(tmp_path, monkeypatch, capsys):
    # `make demo` ends by printing the leaderboard it wrote: rich's Markdown renderer of README.md cut the model
    # names ("clip4idc…") at 80 columns and through a pipe
    from types import SimpleNamespace

    from idcbench import demo
    from idcbench.tables.build import leaderboard_tables

    committed = Path(__file__).resolve().parents[1] / "leaderboard" / "runs"
    tables = leaderboard_tables(committed, resamples=50)
    monkeypatch.setattr(demo, "run_demo", lambda runs_dir, out, **kw: SimpleNamespace(report=None, tables=tables))
    code, out, err = run_cli(capsys, "demo", "--runs-dir", tmp_path / "runs", "--out", tmp_path / "board")
    assert code == 0, err
    grids = [table_grid(t) for ts in tables.values() for t in ts]
    assert len(grids) >= 3 and "…" not in out
    for g in grids:  # through a pipe: each table as Markdown, every row whole
        assert all("| " + " | ".join(" ".join(c.split("\n")) for c in r) + " |" in out for r in g.rows)
    buf = io.StringIO()
    for g in grids:
        print_grid(Console(file=buf, width=80, force_terminal=True, color_system=None), g)
    text = buf.getvalue()
    assert "…" not in text
    assert all(part in text for g in grids for r in g.rows for cell in r[1:] for part in cell.split())
