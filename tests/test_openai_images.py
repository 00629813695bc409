"""What `openai` sends of an image (`idcbench.models.vlm.data_url`): the file's own bytes without any metadata when the
server decodes the same pixels from them, a PNG of `load_image`'s pixels otherwise. Every case decodes what is sent
and compares it with `load_image`, pixel for pixel; PNGs with each filter type and Adam7 interlacing are written
here byte by byte (PIL chooses its filters itself and cannot interlace)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from idcbench.data import load_image
from idcbench.models.vlm.data_url import PNG_SIGNATURE, image_data_url, wire_bytes

SECRET = "the small red cube was moved"  # a caption a file's metadata could carry
CLEVR = Path(__file__).resolve().parents[2] / "shared" / "data" / "clevr-change" / "sample_images"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def filtered(rows: np.ndarray, filters: list[int]) -> bytes:
    """PNG scanlines of `rows` (h, w, 4) uint8, row i filtered with ``filters[i % len(filters)]`` (bpp 4)."""
    out, prev = [], np.zeros(rows.shape[1] * 4, np.int32)
    for i, row in enumerate(rows.reshape(rows.shape[0], -1).astype(np.int32)):
        f = filters[i % len(filters)]
        a = np.concatenate([np.zeros(4, np.int32), row[:-4]])
        b, c = prev, np.concatenate([np.zeros(4, np.int32), prev[:-4]])
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = [np.zeros_like(row), a, b, (a + b) // 2, paeth][f]
        out.append(bytes([f]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row
    return b"".join(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def rgba_png(pixels: np.ndarray, filters: list[int], *, interlace: bool = False, extra: bytes = b"") -> bytes:
    """An 8-bit RGBA PNG of `pixels` with the given row filters (Adam7 passes when `interlace`); `extra` chunks
    before the pixel data."""
    h, w = pixels.shape[:2]
    if interlace:
        scan = b"".join(filtered(pixels[y0::dy, x0::dx], filters) for x0, y0, dx, dy in ADAM7
                        if pixels[y0::dy, x0::dx].size)
    else:
        scan = filtered(pixels, filters)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, int(interlace))
    return PNG_SIGNATURE + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(scan)) + chunk(b"IEND", b"")


def sent(path: Path) -> tuple[str, bytes, Image.Image]:
    mime, data = wire_bytes(path)
    img = Image.open(io.BytesIO(data))
    img.load()
    return mime, data, img


def same_pixels(img: Image.Image, path: Path) -> bool:
    """The RGB a server gets from `img` (an opaque RGBA: either conversion) equals `load_image(path)`'s."""
    rgb = np.asarray(img)[..., :3] if img.mode == "RGBA" else np.asarray(img.convert("RGB"))
    return bool((rgb == np.asarray(load_image(path))).all())


def metadata(text: str = SECRET) -> bytes:
    """Ancillary chunks that carry text or data about the file: tEXt, zTXt, iTXt, eXIf, tIME."""
    exif = Image.Exif()
    exif[0x010E] = text  # ImageDescription
    return (chunk(b"tEXt", b"Description\x00" + text.encode()) + chunk(b"zTXt", b"Comment\x00\x00" +
            zlib.compress(text.encode())) + chunk(b"iTXt", b"Title\x00\x00\x00en\x00\x00" + text.encode()) +
            chunk(b"eXIf", exif.tobytes()) + chunk(b"tIME", struct.pack(">HBBBBB", 2026, 1, 2, 3, 4, 5)))


def noise(h: int = 23, w: int = 37, seed: int = 0) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return np.dstack([rgb, np.full((h, w), 255, np.uint8)])


@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [4, 2, 3, 1, 0]])
@pytest.mark.parametrize("interlace", [False, True])
def test_an_opaque_rgba_png_goes_as_it_is_and_a_transparent_one_as_load_image_sees_it(tmp_path, filters, interlace):
    pixels = noise()
    opaque = tmp_path / "opaque.png"
    opaque.write_bytes(rgba_png(pixels, filters, interlace=interlace, extra=metadata()))
    mime, data, img = sent(opaque)
    assert mime == "image/png" and img.mode == "RGBA" and same_pixels(img, opaque)
    assert (np.asarray(img) == pixels).all()  # the alpha too: the file's pixels exactly
    assert SECRET.encode() not in data and zlib.compress(SECRET.encode()) not in data and b"tEXt" not in data
    for y, x in [(0, 0), (0, 36), (11, 0), (22, 36), (5, 17)]:  # first/last row and column, the middle
        for alpha in (254, 0):
            seen = pixels.copy()
            seen[y, x, 3] = alpha
            path = tmp_path / f"alpha-{y}-{x}-{alpha}.png"
            path.write_bytes(rgba_png(seen, filters, interlace=interlace))
            mime, _, img = sent(path)
            assert mime == "image/png" and img.mode == "RGB" and same_pixels(img, path), (y, x, alpha)


def test_an_rgb_png_goes_without_its_metadata_chunks_or_trailing_bytes(tmp_path):
    pixels = noise()[..., :3]
    meta = PngImagePlugin.PngInfo()
    meta.add_text("Description", SECRET)
    meta.add_itxt("Title", SECRET, zip=True)
    exif = Image.Exif()
    exif[0x010E] = SECRET
    path = tmp_path / "before.png"
    Image.fromarray(pixels).save(path, pnginfo=meta, exif=exif.tobytes(), icc_profile=b"\0" * 64)
    path.write_bytes(path.read_bytes() + SECRET.encode())  # bytes after IEND
    assert Image.open(path).info["Description"] == SECRET
    mime, data, img = sent(path)
    assert mime == "image/png" and img.mode == "RGB" and same_pixels(img, path)
    assert SECRET.encode() not in data and not img.info
    assert [data[i + 4:i + 8] for i in _chunk_offsets(data)] == [b"IHDR", b"IDAT", b"IEND"]
    original = path.read_bytes()
    idat = data[data.index(b"IDAT") - 4:data.index(b"IEND") - 4]
    assert idat in original  # the pixel data itself is the file's, not re-encoded


def _chunk_offsets(data: bytes) -> list[int]:
    offsets, i = [], 8
    while i < len(data):
        offsets.append(i)
        i += 12 + struct.unpack(">I", data[i:i + 4])[0]
    return offsets


def test_a_jpeg_goes_without_exif_xmp_icc_comments_or_trailing_bytes(tmp_path):
    pixels = noise(48, 64)[..., :3]
    exif = Image.Exif()
    exif[0x010E] = SECRET
    exif[0x0112] = 6  # orientation: load_image does not rotate, nor may the server
    for name, options in {"baseline": {}, "progressive": {"progressive": True},
                          "grey": {}, "no-subsampling": {"subsampling": 0}}.items():
        img = Image.fromarray(pixels[..., 0] if name == "grey" else pixels)
        path = tmp_path / f"{name}.jpg"
        img.save(path, quality=90, exif=exif.tobytes(), comment=SECRET.encode(), icc_profile=b"\0" * 64,
                 xmp=f"<x:xmpmeta>{SECRET}</x:xmpmeta>".encode(), **options)
        path.write_bytes(path.read_bytes() + SECRET.encode())
        assert SECRET.encode() in path.read_bytes()
        mime, data, sent_img = sent(path)
        assert mime == "image/jpeg", name
        assert SECRET.encode() not in data and b"Exif" not in data and b"ICC_PROFILE" not in data, name
        assert data.endswith(b"\xff\xd9") and same_pixels(sent_img, path), name
        assert not sent_img.getexif() and "comment" not in sent_img.info, name


@pytest.mark.parametrize("kind", ["transparent-palette", "palette", "grey", "grey-alpha", "16-bit", "cmyk-jpeg",
                                  "gif", "webp", "rgb-with-colour-key"])
def test_images_that_need_conversion_go_as_a_png_of_load_image_pixels(tmp_path, kind):
    rgb = noise()[..., :3]
    img = Image.fromarray(rgb)
    path = tmp_path / f"{kind}.png"
    if kind == "transparent-palette":
        img.convert("P").save(path, transparency=0)
    elif kind == "palette":
        img.convert("P").save(path)
    elif kind == "grey":
        img.convert("L").save(path)
    elif kind == "grey-alpha":
        img.convert("LA").save(path)
    elif kind == "16-bit":
        Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(path)
    elif kind == "cmyk-jpeg":
        path = path.with_suffix(".jpg")
        img.convert("CMYK").save(path)
    elif kind == "gif":
        path = path.with_suffix(".gif")
        img.save(path)
    elif kind == "webp":
        path = path.with_suffix(".webp")
        img.save(path, lossless=True)
    else:
        img.save(path, transparency=tuple(int(v) for v in rgb[0, 0]))
    mime, data, sent_img = sent(path)
    assert mime == "image/png" and sent_img.mode == "RGB" and same_pixels(sent_img, path), kind


def test_max_side_shrinks_on_the_conversion_path(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(noise(30, 50)[..., :3]).save(path)
    assert sent(path)[2].size == (50, 30)
    _, data = wire_bytes(path, 25)
    assert Image.open(io.BytesIO(data)).size == (25, 15)
    assert image_data_url(path, 100) == image_data_url(path)  # not larger than max_side: as it is


@pytest.mark.skipif(not CLEVR.is_dir(), reason="needs ../shared/data (CLEVR-Change sample images)")
def test_clevr_change_images_go_as_they_are_without_blender_metadata():
    for path in sorted(CLEVR.glob("*.png")):
        assert Image.open(path).mode == "RGBA" and "File" in Image.open(path).info  # tEXt: the .blend file
        mime, data, img = sent(path)
        assert mime == "image/png" and img.mode == "RGBA" and not img.info
        assert b"blend" not in data and b"tEXt" not in data and same_pixels(img, path)
        assert (np.asarray(img)[..., 3] == 255).all()
