"""What identifies a run (issue 20): the whole resolved config, every default and the decoding settings included, is
hashed; runtime keys are recorded, not hashed; `--train` with `--init` fine-tunes from the checkpoint; an image above
the pixel limit is one line naming the file."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any, Mapping

import pytest

from _cli import run_cli
from idcbench.errors import UserError
from idcbench.registry import MODELS
from idcbench.run.request import RunRequest, prepare

ROOT = Path(__file__).resolve().parents[1]
OWN_DATA = ROOT / "examples" / "own-data"
PAIRS = f"pairs:{OWN_DATA / 'pairs.jsonl'}"
# keys a family pins itself (resolve_config) or that say where the weights are: not defaults to play with here
PINNED = {"weights_revision", "postprocess_version", "shot_examples", "model", "base_url", "revision", "init"}


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in config.items():
        if isinstance(v, Mapping) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _one_variant_per_family() -> dict[type, str]:
    out: dict[type, str] = {}
    for name in MODELS.names():
        out.setdefault(MODELS.get(name).family, name)
    return out


@pytest.fixture(scope="module")
def server():
    from _chat_server import ChatServer, completion

    chat = ChatServer([completion("the cube moved")], models=[{"id": "some/model", "object": "model"}])
    yield chat.url
    chat.close()


@pytest.fixture
def families(tiny_vlm, server):
    return {"tiny_vlm": tiny_vlm, "server": server}


def _request(name: str, env: dict, tmp_path: Path, **config: Any) -> RunRequest:
    family = MODELS.get(name).family.name
    if family == "vlm":
        config = {"model": str(env["tiny_vlm"]), **config}
    if family == "openai":
        config = {"base_url": env["server"], "model": "some/model", "api_key_env": None, **config}
    return RunRequest(name, PAIRS, config=config, runs_dir=tmp_path)


FAMILIES = _one_variant_per_family()


@pytest.mark.parametrize("family", list(FAMILIES), ids=[f.__name__ for f in FAMILIES])
def test_a_changed_default_is_a_new_run(family, monkeypatch, families, tmp_path):
    name = FAMILIES[family]
    variant = _flat(MODELS.get(name).config)
    defaults = dict(family.config_defaults or {})
    candidates = [k for k, v in defaults.items() if k not in variant and k not in family.runtime_keys
                  and k not in PINNED and isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not candidates:
        assert family.__name__ == "MostFrequent", f"{family.__name__} has no numeric default to change"
        assert not defaults  # the floor has no settings at all
        return
    key = candidates[0]
    before = prepare(_request(name, families, tmp_path), device="cpu")
    assert before.spec.config[key] == defaults[key], f"{name}: default {key} missing from the hashed config"
    monkeypatch.setattr(family, "config_defaults", {**defaults, key: defaults[key] + 1})
    after = prepare(_request(name, families, tmp_path), device="cpu")
    assert after.spec.config[key] == defaults[key] + 1
    assert after.spec.hash != before.spec.hash, f"{name}: changing the default {key} kept the run directory"


def test_runtime_keys_are_recorded_not_hashed(families, tmp_path):
    a = prepare(_request("clip4idc-tiny", families, tmp_path, cache_images=False), device="cpu")
    b = prepare(_request("clip4idc-tiny", families, tmp_path, cache_images=True), device="cpu")
    assert a.spec.hash == b.spec.hash
    assert (a.runtime["cache_images"], b.runtime["cache_images"]) == (False, True)
    assert "cache_images" not in a.spec.config


def test_decoding_and_every_default_are_in_the_spec(families, tmp_path):
    from idcbench.models.clip4idc.captioner import DEFAULTS

    p = prepare(_request("clip4idc-tiny", families, tmp_path), device="cpu")
    assert p.spec.decoding["decoding"] == {"strategy": "greedy", "beam": 3, "length_penalty": 0.0, "max_len": 32}
    assert p.spec.decoding["max_words"] == 32
    recorded = set(_flat(p.spec.config)) | set(p.runtime)
    assert set(_flat(DEFAULTS)) <= recorded


def test_every_committed_run_records_its_whole_config():
    from idcbench.spec import RunSpec

    runs = sorted((ROOT / "leaderboard" / "runs").glob("*/*/*/run_spec.json"))
    assert runs, "no committed runs"
    for path in runs:
        saved = json.loads(path.read_text())
        spec = RunSpec.from_dict(saved["spec"])
        family = MODELS.get(spec.model)
        recorded = set(_flat(spec.config)) | set(saved.get("runtime_config") or {})
        expected = set(_flat(family.full_config({})))
        assert expected <= recorded, f"{path}: missing {sorted(expected - recorded)}"
        assert spec.hash == saved["spec_hash"] and path.parent.name == spec.short_hash, path


# ------------------------------------------------------------------------------------------------------ --train
def _saved_most_frequent(folder: Path, caption: str) -> Path:
    from idcbench.models.baselines.most_frequent import MostFrequent

    m = MostFrequent()
    m.overall, m.count = caption, 1
    m.save(folder)
    return folder


def test_train_with_init_fine_tunes_from_the_checkpoint(tmp_path, capsys):
    init = _saved_most_frequent(tmp_path / "init", "a caption from elsewhere")
    base = ["run", "most-frequent", "--dataset", PAIRS, "--init", init, "--runs-dir", tmp_path / "runs",
            "-m", "BLEU-4", "--device", "cpu"]
    code, _, err = run_cli(capsys, *base)
    assert code == 0, err
    code, _, err = run_cli(capsys, *base, "--train")
    assert code == 0, err
    dirs = {json.loads((d / "run_spec.json").read_text())["spec"]["train"]: d
            for d in (tmp_path / "runs").glob("*/most-frequent/*")}
    assert set(dirs) == {False, True}  # two runs: evaluated as it is, and fine-tuned
    captions = {k: {json.loads(line)["caption"] for line in (d / "predictions.jsonl").read_text().splitlines()}
                for k, d in dirs.items()}
    assert captions[False] == {"a caption from elsewhere"}
    from idcbench.data import load_dataset
    from idcbench.models.baselines.most_frequent import MostFrequent

    fitted = MostFrequent()
    fitted.fit(load_dataset(PAIRS).examples("train"), [], None)
    assert captions[True] == {fitted.overall} != captions[False]  # what fit learned from the train split
    spec = json.loads((dirs[True] / "run_spec.json").read_text())["spec"]
    assert spec["checkpoint"] and spec["train_manifest"]


def test_train_on_a_model_that_does_not_learn_is_refused(families, tmp_path):
    req = _request("vlm", families, tmp_path)
    req.train = True
    with pytest.raises(UserError, match="--train: vlm does not learn from data with this config"):
        prepare(req, device="cpu")


# --------------------------------------------------------------------------------------------- oversized images
def _bomb_png(path: Path, side: int = 20_000) -> Path:
    """A 1-bit PNG of side x side black pixels: a few KB on disk, side**2 pixels decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = b"\0" * (1 + side // 8)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_one_line_naming_the_file(tmp_path, capsys):
    bomb = _bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200_000
    own_model = ROOT / "examples" / "own-model" / "pixel_diff.py"
    code, out, err = run_cli(capsys, "caption", "pixel-diff", "--include", own_model, bomb,
                             OWN_DATA / "images" / "p07_after.png")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert str(bomb) in line and "20000 x 20000" in line and "IDCBENCH_MAX_IMAGE_PIXELS" in line


def test_the_pixel_limit_is_a_setting(tmp_path, monkeypatch):
    from PIL import Image

    from idcbench.data import load_image

    Image.new("RGB", (16, 16), "red").save(tmp_path / "small.png")
    monkeypatch.setenv("IDCBENCH_MAX_IMAGE_PIXELS", "100")
    with pytest.raises(UserError, match=r"16 x 16 = 256 pixels, above the limit of 100"):
        load_image(tmp_path / "small.png", example_id="x1")
    monkeypatch.setenv("IDCBENCH_MAX_IMAGE_PIXELS", "256")
    assert load_image(tmp_path / "small.png").size == (16, 16)
    monkeypatch.setenv("IDCBENCH_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(UserError, match="expected a number of pixels"):
        load_image(tmp_path / "small.png")


def test_a_run_over_a_pairs_file_with_a_bomb_ends_in_one_line(tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(OWN_DATA, data)
    _bomb_png(data / "images" / "p09_after.png")  # a test pair's after image
    code, out, err = run_cli(capsys, "run", "nearest-neighbour-tiny", "--dataset", f"pairs:{data / 'pairs.jsonl'}",
                             "--runs-dir", tmp_path / "runs", "-m", "BLEU-4", "--device", "cpu")
    assert code == 2, err
    assert "Traceback" not in err and "p09_after.png" in err and "IDCBENCH_MAX_IMAGE_PIXELS" in err
    assert len(err.strip().splitlines()) == 1
