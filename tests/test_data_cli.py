"""`idcbench data synth | info | verify`, run in-process through the CLI entry point (exit codes, one-line errors)."""

import json
import shutil
from pathlib import Path

import pytest

from _cli import run_cli as run
from idcbench.datasets import shapes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.skipif(not (SHARED / "spot-the-diff" / "test.json").exists(), reason="../shared/data absent")
def test_info_json_counts_on_real_annotations_without_images(capsys, tmp_path: Path):
    for split in ("train", "val", "test"):
        shutil.copy(SHARED / "spot-the-diff" / f"{split}.json", tmp_path / f"{split}.json")
    code, out, _ = run(capsys, "data", "info", "spot-the-diff", "--data-root", str(tmp_path), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["splits"]["test"]["examples"] == 1270 and result["splits"]["test"]["references"] == 2107
    assert result["splits"]["test"]["empty_references"] == 7
    assert (result["splits"]["val"]["examples"], result["splits"]["val"]["references"]) == (1493, 3310)
    assert (result["splits"]["train"]["examples"], result["splits"]["train"]["references"]) == (8566, 17676)
    assert result["name"] == "spot-the-diff" and "github.com/harsh19/spot-the-diff" in result["source"]
    code, out, _ = run(capsys, "data", "info", "spot-the-diff", "--data-root", str(tmp_path))
    assert code == 0 and "1,270" in out and "2,107" in out
    code, _, err = run(capsys, "data", "verify", "spot-the-diff", "--data-root", str(tmp_path), "--split", "test")
    assert code == 2
    assert "test 256: missing" in err  # the first img_id of test.json, listed before the summary line
    assert err.strip().splitlines()[-1].startswith("error: 2540 image(s) missing or corrupt")


def test_info_without_annotations_still_describes(capsys, tmp_path: Path):
    code, out, _ = run(capsys, "data", "info", "ier", "--data-root", str(tmp_path / "nowhere"), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["splits"] is None and "not found" in result["missing"] and "valid.json" in result["layout"]
    code, out, _ = run(capsys, "data", "info", "clevr-change", "--data-root", str(tmp_path))
    assert code == 0 and "annotations not present" in out and "change_captions.json" in out


def test_synth_info_verify_round_trip(capsys, tmp_path: Path):
    out_dir = tmp_path / "syn"
    code, out, _ = run(capsys, "data", "synth", "--out", str(out_dir), "--scenes", "10", "--size", "32", "--seed", "4",
                       "--splits", "0.6,0.2,0.2")
    assert code == 0 and "wrote 10 scenes" in out
    splits = shapes.split_ids(10, (0.6, 0.2, 0.2), seed=4)
    code, out, _ = run(capsys, "data", "info", "clevr-change", "--data-root", str(out_dir), "--json")
    result = json.loads(out)
    for split, ids in splits.items():
        assert result["splits"][split]["examples"] == 2 * len(ids)
        assert result["splits"][split]["references"] == len(ids) * (shapes.N_CHANGE_CAPTIONS + shapes.N_NO_CHANGE_CAPTIONS)
        assert result["splits"][split]["subsets"]["semantic"] == len(ids)
    code, out, _ = run(capsys, "data", "verify", "shapes", "--data-root", str(out_dir))
    assert code == 0 and "all images present and decodable" in out
    (out_dir / "sc_images" / f"CLEVR_semantic_{splits['test'][0]:06d}.png").write_bytes(b"\x89PNG broken")
    code, _, err = run(capsys, "data", "verify", "clevr-change", "--data-root", str(out_dir))
    assert code == 2 and f"{splits['test'][0]:06d}.png: corrupt" in err
    assert err.strip().splitlines()[-1].startswith("error: 1 image(s) missing or corrupt")
    code, _, err = run(capsys, "data", "synth", "--out", str(out_dir), "--scenes", "3")
    assert_one_line_error(code, err, "already exists", "--overwrite")


def test_user_errors_are_one_line_exit_2(capsys, tmp_path: Path):
    code, _, err = run(capsys, "data", "verify", "ier", "--data-root", str(tmp_path / "nowhere"))
    assert_one_line_error(code, err, "data root", "not found", "idcbench data info ier")
    (tmp_path / "test.json").write_text('[{"img_id": "1", "sentences": ["a"]}\n {"img_id": "2"}]')
    code, _, err = run(capsys, "data", "info", "spot-the-diff", "--data-root", str(tmp_path))
    assert_one_line_error(code, err, "test.json: line 2, column 2: invalid JSON")
    (tmp_path / "test.json").write_text('[{"img_id": "1", "sentences": ["a"]}]')
    code, _, err = run(capsys, "data", "verify", "spot-the-diff", "--data-root", str(tmp_path), "--split", "val")
    assert_one_line_error(code, err, "unknown split 'val'")
    code, _, err = run(capsys, "data", "info", "clever-change")
    assert_one_line_error(code, err, "unknown dataset 'clever-change'", "did you mean 'clevr-change'")
    code, _, err = run(capsys, "data", "synth", "--out", str(tmp_path / "s"), "--splits", "1,x,0")
    assert_one_line_error(code, err, "--splits")
    code, _, err = run(capsys, "data", "info", "shapes", "--data-root", str(tmp_path / "empty"), "--json")
    assert code == 0  # not generated yet: described, never generated by `info`
    assert not (tmp_path / "empty").exists()
