"""The image pipeline (idcbench/images.py): worker processes give the pixels PIL gives in this process, the decoded-image
cache returns the same pixels, decodes a changed file again and has one builder at a time, failures stay one line,
and nothing draws from the global RNG."""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idcbench.errors import UserError
from idcbench.images import ImageCache, ImagePipeline, Normalize, decode_resized


def reference(path: Path, size: int) -> torch.Tensor:
    """CLIP4IDC's preprocessing written out: RGB, bicubic resize to size x size, uint8 CHW."""
    with Image.open(path) as img:
        rgb = img.convert("RGBA").convert("RGB") if img.mode == "P" else img.convert("RGB")
    return torch.from_numpy(np.array(rgb.resize((size, size), Image.BICUBIC))).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Noise images of several sizes and modes (RGB, RGBA, L, P, JPEG)."""
    d = tmp_path_factory.mktemp("images")
    g = np.random.default_rng(0)
    paths = []
    for i, (w, h, mode, ext) in enumerate([(48, 32, "RGB", "png"), (20, 20, "RGBA", "png"), (33, 17, "L", "png"),
                                           (40, 40, "P", "png"), (64, 48, "RGB", "jpg"), (16, 16, "RGB", "png")] * 3):
        arr = g.integers(0, 256, (h, w, 4 if mode == "RGBA" else 3), dtype=np.uint8)
        img = Image.fromarray(arr, "RGBA" if mode == "RGBA" else "RGB")
        img = img.convert(mode) if mode in ("L",) else img.quantize(64) if mode == "P" else img
        paths.append(d / f"{i}.{ext}")
        img.save(paths[-1])
    return paths


def test_decode_resized_is_clip4idc_preprocessing(images):
    for p in images[:6]:
        assert torch.equal(decode_resized(p, 24), reference(p, 24)), p


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_in_order_from_workers_equal_the_reference(images, workers):
    pipe = ImagePipeline(24, workers=workers)
    jobs = [(images[i: i + 4], images[i + 1: i + 3]) for i in range(0, len(images) - 4, 3)]
    for _ in range(2):  # the persistent workers serve a second call
        out = list(pipe.batches(jobs))
        assert len(out) == len(jobs)
        for (a, b), (xa, xb) in zip(jobs, out):
            assert torch.equal(xa, torch.stack([reference(p, 24) for p in a]))
            assert torch.equal(xb, torch.stack([reference(p, 24) for p in b]))
    rows = [len(x) for x, in pipe.stacked([images], 5)]
    assert rows == [5, 5, 5, 3]
    pipe.close()


def test_normalize_is_the_float_formula():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    want = (x.float().div_(255.0) - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.equal(Normalize(mean, std)(x), want)


def test_a_missing_image_in_a_worker_is_one_user_error_line(images, tmp_path):
    pipe = ImagePipeline(8, workers=1)
    with pytest.raises(UserError) as e:
        list(pipe.batches([([images[0], tmp_path / "gone.png"],)]))
    assert "gone.png" in str(e.value) and "\n" not in str(e.value) and "Traceback" not in str(e.value)
    assert len(list(pipe.batches([([images[0]],)]))) == 1  # and the pipeline still works
    pipe.close()


def test_iterating_workers_does_not_draw_from_the_global_rng(images):
    torch.manual_seed(3)
    state = torch.get_rng_state()
    list(ImagePipeline(8, workers=2).batches([([p],) for p in images[:4]]))
    assert torch.equal(torch.get_rng_state(), state)


def test_cache_returns_the_decoded_pixels_and_decodes_a_changed_file_again(images, tmp_path):
    files = []
    for i, p in enumerate(images[:6]):  # own copies: one of them changes
        files.append(tmp_path / f"{i}{p.suffix}")
        files[-1].write_bytes(p.read_bytes())
    cache = ImageCache(16, root=tmp_path / "cache")
    pipe = ImagePipeline(16, workers=2, cache=cache)
    pipe.add_to_cache(files)
    segments = sorted(cache.dir.glob("seg-*.u8"))
    assert len(segments) == 1 and set(cache.where) == set(files)
    # another process (a fresh cache object) finds every file and reads them from the segment, not the files
    again = ImageCache(16, root=tmp_path / "cache")
    again.lookup(files)
    assert set(again.where) == set(files) and {w[0] for w in again.where.values()} == {str(segments[0])}
    got = ImagePipeline(16, cache=again).read(files)
    assert torch.equal(got, torch.stack([reference(p, 16) for p in files]))
    # a rewritten file (new content, new mtime) is not found: decoded from the file, then added as a new entry
    Image.new("RGB", (9, 9), (1, 2, 3)).save(files[2])
    os.utime(files[2], ns=(1, 1))
    fresh = ImageCache(16, root=tmp_path / "cache")
    fresh.lookup(files)
    assert files[2] not in fresh.where and len(fresh.where) == len(files) - 1
    assert ImagePipeline(16, cache=fresh).read([files[2]])[0, :, 0, 0].tolist() == [1, 2, 3]
    ImagePipeline(16, cache=fresh).add_to_cache(files)
    assert len(list(cache.dir.glob("seg-*.u8"))) == 2 and fresh.where[files[2]][1] == 0
    assert torch.equal(ImagePipeline(16, cache=fresh).read(files)[2], reference(files[2], 16))
    # a segment deleted by hand: its files are decoded again, not read from a missing file
    segments[0].unlink()
    gone = ImageCache(16, root=tmp_path / "cache")
    gone.lookup(files)
    assert set(gone.where) == {files[2]}
    assert torch.equal(ImagePipeline(16, workers=1, cache=gone).read(files), torch.stack([reference(p, 16) for p in files]))


def _build(root: str, files: list[str]) -> None:
    ImagePipeline(16, cache=ImageCache(16, root=root)).add_to_cache([Path(f) for f in files])


def test_concurrent_builders_write_one_segment(images, tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_build, args=(str(tmp_path), [str(p) for p in images])) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(list(ImageCache(16, root=tmp_path).dir.glob("seg-*.u8"))) == 1
    cache = ImageCache(16, root=tmp_path)
    cache.lookup(images)
    assert len(cache.where) == len(images)


def test_an_unwritable_cache_falls_back_to_decoding(images, tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    pipe = ImagePipeline(16, cache=ImageCache(16, root=blocked))
    pipe.add_to_cache(images[:2])
    assert pipe.cache.broken and "disabled" in caplog.text
    assert torch.equal(pipe.read(images[:2]), torch.stack([reference(p, 16) for p in images[:2]]))


def test_memory_keeps_the_pixels_decoded_in_process(images, tmp_path):
    copy = tmp_path / "x.png"
    copy.write_bytes(images[0].read_bytes())
    pipe = ImagePipeline(16, memory=True)
    first = pipe.read([copy])
    copy.unlink()  # a second read comes from memory, not the file
    assert torch.equal(pipe.read([copy]), first)
    with pytest.raises(UserError):
        ImagePipeline(16).read([copy])
