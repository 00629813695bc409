"""Prediction files: the three formats and one clear line for every malformed input."""

from __future__ import annotations

import json

import pytest

from idcbench.errors import UserError
from idcbench.predictions import read_predictions, read_references, write_jsonl


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_formats(tmp_path):
    coco = write(tmp_path / "r.json", json.dumps([{"image_id": 12, "caption": "a"}, {"image_id": "x", "caption": ""}]))
    assert read_predictions(coco) == {"12": "a", "x": ""}
    jl = tmp_path / "p.jsonl"
    write_jsonl(jl, {"1": "é “q”", "2": "b"})
    assert read_predictions(jl) == {"1": "é “q”", "2": "b"}
    sc = write(tmp_path / "sc_results.json", json.dumps([{"image_id": "000001.png", "caption": "moved"}]))
    nsc = write(tmp_path / "nsc_results.json", json.dumps([{"image_id": "000001.png", "caption": "no change"},
                                                           {"image_id": "000002.png_n", "caption": "same"}]))
    assert read_predictions(sc, nsc) == {"000001.png": "moved", "000001.png_n": "no change", "000002.png_n": "same"}


@pytest.mark.parametrize("text, message", [
    ('[{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}]', "duplicate id '1'"),
    ('[{"image_id": 1, "caption": 5}]', "caption of id '1' is not a string"),
    ('[{"image_id": 1, "caption": "a"},\n {"image_id": 2 "caption": "b"}]', "line 2, column 17: invalid JSON"),
    ('{"id": "1", "caption": "a"}\n{"id": "1", "caption": "b"}\n', "line 2: duplicate id '1'"),
    ('{"id": "1", "caption": "a"}\n{"id": "2", "caption": "b"\n', "line 2, column 27: invalid JSON"),
    ('{"id": "1", "text": "a"}\n', 'expected {"id": ..., "caption": ...}'),
    ('[{"image_id": [1], "caption": "a"}]', "id must be a string or an integer"),
    ("", "empty predictions file"),
])
def test_bad_files(tmp_path, text, message):
    path = write(tmp_path / "p.json", text)
    with pytest.raises(UserError) as e:
        read_predictions(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_not_utf8_and_missing(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"id": "1", "caption": "caf\xe9"}\n')
    with pytest.raises(UserError, match="not UTF-8"):
        read_predictions(path)
    with pytest.raises(UserError, match="not found"):
        read_predictions(tmp_path / "none.json")


def test_references_file(tmp_path):
    gt = write(tmp_path / "gt.json", json.dumps({
        "images": [{"id": 1}, {"id": 1}, {"id": 2}],
        "annotations": [{"image_id": 1, "caption": "a", "id": 0}, {"image_id": 2, "caption": "b", "id": 1},
                        {"image_id": 1, "caption": "c", "id": 2}]}))
    assert read_references(gt) == {"1": ["a", "c"], "2": ["b"]}
    bad = write(tmp_path / "bad.json", json.dumps({"annotations": [{"image_id": 1, "caption": None}]}))
    with pytest.raises(UserError, match="caption is not a string"):
        read_references(bad)


def test_jsonl_captions_keep_unicode_line_separators(tmp_path):
    # json.dumps(ensure_ascii=False) leaves U+2028 / U+0085 unescaped inside strings: they are not line ends in JSONL
    captions = {"1": "the cube\u2028moved", "2": "a\x85b", "3": "plain"}
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": k, "caption": v}, ensure_ascii=False) + "\n" for k, v in captions.items()),
                    encoding="utf-8")
    assert read_predictions(path) == captions
