"""`pairs:PATH` (a user's own JSONL / CSV of pairs) through `idcbench run`, `eval`, `score`, `data info` and
`data verify`, on tiny PNGs generated here; every malformed file is one line naming file:line, exit 2."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from _cli import run_cli as run
from idcbench import scoring
from idcbench.data import load_dataset
from idcbench.models.baselines.text import normalize_caption

METRICS = "BLEU-4,ROUGE-L,CIDEr-D"
CAPTIONS = {  # split -> per pair (references, kind); the most frequent train caption is "no change" (3 of 6)
    "train": [(["the red square moved", "no change"], "semantic"), (["the square turned blue"], "semantic"),
              (["no change", "nothing changed"], "distractor"), (["no change"], "distractor")],
    "val": [(["the square moved"], "semantic")],
    "test": [(["the green square moved", "a square moved"], "semantic"), (["no change"], "distractor"),
             (["the square turned red"], "semantic")],
}


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def make_rows(folder: Path) -> list[dict]:
    """Two 8 px PNGs per pair (a different colour for each pair: a real, tiny image dataset) and one row each."""
    (folder / "img").mkdir(parents=True)
    rows = []
    for split, pairs in CAPTIONS.items():
        for refs, kind in pairs:
            k = len(rows)
            for side, shade in (("a", 10 * k), ("b", 10 * k + (0 if kind == "distractor" else 90))):
                Image.new("RGB", (8, 8), (shade, 255 - shade, 40)).save(folder / "img" / f"{k}{side}.png")
            rows.append({"before": f"img/{k}a.png", "after": f"img/{k}b.png", "captions": refs, "split": split,
                         "kind": kind})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def data(tmp_path: Path) -> tuple[Path, list[dict]]:
    folder = tmp_path / "mine"
    rows = make_rows(folder)
    write_jsonl(folder / "pairs.jsonl", rows)
    return folder, rows


def _run_dir(runs: Path, model: str) -> Path:
    (d,) = [p for p in runs.glob(f"*/{model}/*") if p.is_dir()]
    return d


def test_run_eval_score_info_verify_on_a_jsonl_file(data, tmp_path, capsys, monkeypatch):
    folder, rows = data
    monkeypatch.chdir(tmp_path)  # `pairs:mine/pairs.jsonl` is relative to the current folder
    name = "pairs:mine/pairs.jsonl"
    code, out, err = run(capsys, "run", "most-frequent", "--dataset", name, "--runs-dir", "runs", "--metrics", METRICS,
                         "--device", "cpu")
    assert code == 0, err
    run_dir = _run_dir(tmp_path / "runs", "most-frequent")
    assert run_dir.parent.parent.name == "pairs_mine_pairs.jsonl"  # one folder name for a dataset that is a path
    # most-frequent's prediction is the mode of the normalised train references, computed here from the rows
    counts = Counter(normalize_caption(c) for r in rows if r["split"] == "train" for c in r["captions"])
    (mode, _), = counts.most_common(1)
    test = [r for r in rows if r["split"] == "test"]
    ids = [str(k + 1) for k, r in enumerate(rows) if r["split"] == "test"]  # default ids: line numbers
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert preds == [{"id": i, "caption": mode} for i in ids]
    # scores equal the scorer run on the file's references and its tag subsets
    refs = {i: r["captions"] for i, r in zip(ids, test)}
    subsets = {"total": ids, **{f"kind={k}": [i for i, r in zip(ids, test) if r["kind"] == k]
                                for k in ("distractor", "semantic")}}
    report = scoring.score({p["id"]: p["caption"] for p in preds}, refs, subsets, METRICS.split(","))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["subsets"] == scoring.metrics_json(report)["subsets"]
    spec = json.loads((run_dir / "run_spec.json").read_text())
    assert spec["spec"]["dataset"] == name and spec["data_root"] == str(tmp_path)

    # eval of the run's predictions against the same dataset gives the run's numbers
    code, out, err = run(capsys, "eval", run_dir / "predictions.jsonl", "--dataset", name, "--metrics", METRICS,
                         "--json", tmp_path / "eval.json")
    assert code == 0, err
    assert json.loads((tmp_path / "eval.json").read_text())["subsets"] == metrics["subsets"]

    # idcbench score from another folder finds the file again (the run recorded its data root)
    monkeypatch.chdir(folder)
    code, out, err = run(capsys, "score", tmp_path / run_dir.relative_to(tmp_path), "--metrics", METRICS)
    assert code == 0, err
    assert json.loads((run_dir / "metrics.json").read_text())["subsets"] == metrics["subsets"]

    # data info counts the file's rows; --data-root resolves the relative path
    code, out, err = run(capsys, "data", "info", "pairs:pairs.jsonl", "--data-root", folder, "--json")
    assert code == 0, err
    info = json.loads(out)
    for split, pairs in CAPTIONS.items():
        assert info["splits"][split]["examples"] == len(pairs)
        assert info["splits"][split]["references"] == sum(len(refs) for refs, _ in pairs)
    assert info["name"] == "pairs:pairs.jsonl" and info["root"] == str(folder)

    code, out, err = run(capsys, "data", "verify", f"pairs:{folder / 'pairs.jsonl'}")
    assert code == 0 and "all images present and decodable" in out, err

    # the leaderboard names the dataset's CSV with one file name too
    from idcbench.tables.publish import render_leaderboard

    files = render_leaderboard(tmp_path / "runs", resamples=10)
    assert sorted(files) == ["README.md", "index.html", "pairs_mine_pairs.jsonl.csv"]
    assert name in files["README.md"]


def test_editing_the_file_is_a_new_run(data, tmp_path, capsys):
    folder, rows = data
    args = ["run", "most-frequent", "--dataset", "pairs:pairs.jsonl", "--data-root", folder, "--runs-dir",
            tmp_path / "runs", "--metrics", "BLEU-4", "--device", "cpu"]
    assert run(capsys, *args)[0] == 0
    first = _run_dir(tmp_path / "runs", "most-frequent")
    code, out, _ = run(capsys, *args)
    assert code == 0 and "reused" in out
    # same ids and references, a different image: the manifest (file sha256) changes, so does the run directory
    shutil.copy(folder / "img" / "0b.png", folder / "img" / "copy.png")
    rows[-1]["after"] = "img/copy.png"
    write_jsonl(folder / "pairs.jsonl", rows)
    code, out, _ = run(capsys, *args)
    assert code == 0 and "reused" not in out
    runs = sorted(p for p in first.parent.iterdir() if p.is_dir())
    assert len(runs) == 2 and first in runs


def test_csv_with_json_caption_lists_and_ids_equals_jsonl(data, tmp_path):
    folder, rows = data
    with open(folder / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "before", "after", "captions", "split", "kind"])
        for k, r in enumerate(rows):
            caps = r["captions"][0] if len(r["captions"]) == 1 else json.dumps(r["captions"])
            w.writerow([str(k + 1), r["before"], r["after"], caps, r["split"], r["kind"]])
    a, b = load_dataset("pairs:pairs.csv", folder), load_dataset("pairs:pairs.jsonl", folder)
    assert a.splits() == b.splits() == ["train", "val", "test"]
    for split in a.splits():
        assert a.examples(split) == b.examples(split)
        assert a.subsets(split) == b.subsets(split)
    assert a.fingerprint() != b.fingerprint()  # different bytes, different run spec


def test_missing_image_names_file_and_line(data, tmp_path, capsys):
    folder, rows = data
    (folder / "img" / "5b.png").unlink()  # row 6 of the file (test, second pair)
    where = f"{folder / 'pairs.jsonl'}:6"
    code, _, err = run(capsys, "run", "most-frequent", "--dataset", "pairs:pairs.jsonl", "--data-root", folder,
                       "--runs-dir", tmp_path / "runs", "--device", "cpu")
    assert_one_line_error(code, err, where, "after image not found", str(folder / "img" / "5b.png"))
    assert not (tmp_path / "runs").exists()  # nothing half-written
    code, _, err = run(capsys, "data", "verify", "pairs:pairs.jsonl", "--data-root", folder)
    assert code == 2
    assert f"{where}: test 6: missing {folder / 'img' / '5b.png'}" in err
    assert err.strip().splitlines()[-1].startswith("error: 1 image(s) missing or corrupt")
    # info reads no image: it still describes and counts
    code, out, _ = run(capsys, "data", "info", "pairs:pairs.jsonl", "--data-root", folder, "--json")
    assert code == 0 and json.loads(out)["splits"]["test"]["examples"] == 3


@pytest.mark.parametrize("edit, needles", [
    (lambda rows: rows[2].pop("captions"), ["pairs.jsonl:3: missing column(s) captions", "found: after, before"]),
    (lambda rows: rows[1].update(captions=[]), ["pairs.jsonl:2: captions must be a non-empty list"]),
    (lambda rows: rows[1].update(captions=[3]), ["pairs.jsonl:2: captions must be"]),
    (lambda rows: rows[0].update(split=""), ["pairs.jsonl:1: split '' is not a non-empty name"]),
    (lambda rows: rows[2].update(split="Test"), ["pairs.jsonl:3: split 'Test': write 'test'"]),
    (lambda rows: rows[0].update(split="train "), ["pairs.jsonl:1: split 'train ': write 'train'"]),
    (lambda rows: rows[3].update(before=None), ["pairs.jsonl:4: before None is not an image path"]),
    (lambda rows: rows[4].update(extra={"a": 1}), ["pairs.jsonl:5: tag 'extra' is dict"]),
    (lambda rows: [r.update(id="x") for r in rows[:2]], ["pairs.jsonl:2: id 'x' is already used on line 1"]),
])
def test_bad_jsonl_rows_are_one_line_with_file_and_line(data, tmp_path, capsys, edit, needles):
    folder, rows = data
    edit(rows)
    write_jsonl(folder / "pairs.jsonl", rows)
    code, _, err = run(capsys, "data", "info", "pairs:pairs.jsonl", "--data-root", folder)
    assert_one_line_error(code, err, *needles)


def test_bad_files_are_one_line(data, tmp_path, capsys):
    folder, rows = data
    text = (folder / "pairs.jsonl").read_text().splitlines()
    (folder / "broken.jsonl").write_text("\n".join(text[:2] + ['{"before": "img/0a.png",'] + text[3:]) + "\n")
    code, _, err = run(capsys, "data", "verify", "pairs:broken.jsonl", "--data-root", folder)
    assert_one_line_error(code, err, "broken.jsonl: line 3, column 25: invalid JSON")
    (folder / "header.csv").write_text("before,after,caption,split\nimg/0a.png,img/0b.png,no change,test\n")
    code, _, err = run(capsys, "eval", tmp_path / "nothing.jsonl", "--dataset", "pairs:header.csv", "--data-root", folder)
    assert_one_line_error(code, err, "header.csv:1: missing column(s) captions", "found: before, after, caption, split")
    (folder / "cells.csv").write_text("before,after,captions,split\nimg/0a.png,img/0b.png,no change,test,extra\n")
    code, _, err = run(capsys, "data", "info", "pairs:cells.csv", "--data-root", folder)
    assert_one_line_error(code, err, "cells.csv:2: 5 cells, the header has 4")
    (folder / "pairs.txt").write_text("")
    code, _, err = run(capsys, "data", "info", "pairs:pairs.txt", "--data-root", folder)
    assert_one_line_error(code, err, "expected a .jsonl or .csv file")
    code, _, err = run(capsys, "run", "most-frequent", "--dataset", "pairs:absent.jsonl", "--data-root", folder,
                       "--runs-dir", tmp_path / "runs", "--device", "cpu")
    assert_one_line_error(code, err, "pairs:absent.jsonl", "not found", "--data-root")
