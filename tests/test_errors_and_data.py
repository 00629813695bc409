"""User-error helpers and the data types: JSON errors name the file and position; images load as RGB."""

import json
from pathlib import Path

import pytest
from PIL import Image

from idcbench.data import Example, data_root, load_image
from idcbench.errors import UserError
from idcbench.files import read_json


def test_read_json_reports_file_line_and_column(tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": 1,\n "b": [1, 2,, 3]}\n')
    with pytest.raises(UserError) as err:
        read_json(bad)
    assert str(err.value).startswith(f"{bad}: line 2, column ")
    assert "invalid JSON" in str(err.value)


def test_read_json_rejects_non_utf8_and_missing(tmp_path: Path):
    latin = tmp_path / "latin.json"
    latin.write_bytes('["caf\xe9"]'.encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_json(latin)
    with pytest.raises(UserError, match="not found"):
        read_json(tmp_path / "missing.json", what="predictions file")
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"x": [1, "é"]}), encoding="utf-8")
    assert read_json(ok) == {"x": [1, "é"]}


def test_user_error_is_one_line():
    assert "\n" not in str(UserError("first\nsecond"))


def test_data_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IDCBENCH_DATA", str(tmp_path / "env"))
    assert data_root("ier", tmp_path / "explicit") == tmp_path / "explicit"
    assert data_root("ier") == tmp_path / "env" / "ier"
    monkeypatch.delenv("IDCBENCH_DATA")
    monkeypatch.setenv("IDCBENCH_CACHE", str(tmp_path / "cache"))
    assert data_root("ier") == tmp_path / "cache" / "data" / "ier"


@pytest.mark.parametrize("mode,suffix", [("RGBA", "png"), ("P", "gif"), ("L", "jpg"), ("RGB", "jpeg")])
def test_load_image_converts_to_rgb(tmp_path: Path, mode: str, suffix: str):
    path = tmp_path / f"img.{suffix}"
    Image.new("RGB", (12, 8), (200, 30, 40)).convert(mode).save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (12, 8)


def test_load_image_gif_first_frame(tmp_path: Path):
    frames = [Image.new("P", (4, 4), i) for i in (3, 9)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as im:
        expected = im.convert("RGB").getpixel((0, 0))
    assert load_image(path).getpixel((0, 0)) == expected


def test_load_image_errors_name_example_and_path(tmp_path: Path):
    with pytest.raises(UserError, match=r"example 7: image not found: .*nope\.png"):
        load_image(tmp_path / "nope.png", example_id="7")
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(UserError, match=r"example 8: cannot decode image .*corrupt\.png"):
        load_image(corrupt, example_id="8")


def test_example_pair_and_kind():
    ex = Example("000002.png_n", Path("b.png"), Path("a.png"), ("no change",), {"kind": "distractor"})
    assert ex.pair.before == Path("b.png") and ex.kind == "distractor"
