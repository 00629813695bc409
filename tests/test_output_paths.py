"""Unusable output paths are refused in one line before any work (issue 14, item 3)."""

from __future__ import annotations

import pytest

from idcbench.cli import main


@pytest.mark.parametrize("bad", ["dir", "file/under", "/proc/idcbench-x.json"])
def test_eval_json_bad_path_is_one_line_before_scoring(tmp_path, capsys, bad):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    target = bad if bad.startswith("/") else str(tmp_path / bad)
    preds = tmp_path / "p.json"
    preds.write_text('[{"image_id": "1", "caption": "a"}]')
    refs = tmp_path / "gt.json"
    refs.write_text('{"annotations": [{"image_id": "1", "caption": "a"}], "images": [{"id": "1"}]}')
    with pytest.raises(SystemExit) as e:
        main(["eval", str(preds), "-r", str(refs), "--json", target])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--json" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_report_and_leaderboard_out_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for args in (["report", str(tmp_path), "--out", str(tmp_path / "file" / "r.html")],
                 ["leaderboard", "--runs-dir", str(tmp_path), "--out", str(tmp_path / "file" / "lb")]):
        with pytest.raises(SystemExit) as e:
            main(args)
        err = capsys.readouterr().err
        assert e.value.code == 2 and "--out" in err and "Traceback" not in err
