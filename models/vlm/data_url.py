"""Images as data URLs for a chat-completions request: the file's own bytes, stripped of every metadata chunk or
segment, when the server decodes the same pixels from them as `idcbench.data.load_image` does; a lossless PNG of
`load_image`'s pixels otherwise.

Sent as they are (only the chunks and segments decoding needs; no text, EXIF, XMP, ICC, time stamp, thumbnail or
trailing bytes of the file reach the server):

- PNG, 8 bits per channel, not animated: RGB without a transparent colour key (``tRNS``), and RGBA whose alpha is 255
  everywhere (CLEVR-Change's renders). An opaque RGBA file goes with its alpha channel: any RGBA -> RGB conversion a
  server may apply (drop alpha as `load_image` does, or composite over white as vLLM and transformers do) gives the
  file's RGB, so the server sees what the `vlm` family sees. Checking the alpha costs one inflate of the pixel data,
  not a decode: see `_alpha_is_opaque`.
- JPEG, baseline or progressive, 8-bit, grey or 3 components: tables, frame, scans and restart intervals, the JFIF
  header without its thumbnail and Adobe's colour-transform flag (it says how the 3 components are read). EXIF goes,
  and with it the orientation flag, which `load_image` does not apply either.

Re-encoded as PNG (zlib level 1) from `load_image`'s RGB pixels: everything else (RGBA with transparency, palette,
grey PNG, 16-bit, CMYK or 12-bit JPEG, GIF, WebP, ...) and every image that ``max_side`` shrinks.

>>> import base64, io, tempfile
>>> from PIL import Image, PngImagePlugin
>>> meta = PngImagePlugin.PngInfo(); meta.add_text("Comment", "the red cube moved")
>>> path = Path(tempfile.mkdtemp()) / "before.png"
>>> Image.new("RGB", (48, 32), (200, 10, 10)).save(path, pnginfo=meta)
>>> b"cube" in path.read_bytes()
True
>>> mime, data = wire_bytes(path)
>>> mime, b"cube" in data, Image.open(io.BytesIO(data)).getpixel((0, 0))
('image/png', False, (200, 10, 10))
>>> image_data_url(path).startswith("data:image/png;base64,")
True
"""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib
from pathlib import Path

from idcbench.data import load_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT = (b"IHDR", b"IDAT", b"IEND")  # IHDR, the pixel data and the end: all a decoder needs for RGB(A) 8-bit
_JPEG_FRAMES = (0xC0, 0xC1, 0xC2)  # baseline, extended sequential and progressive, Huffman-coded
_JPEG_OTHER_FRAMES = (0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)  # lossless, hierarchical, arithmetic
_JPEG_NEXT_MARKER = re.compile(rb"\xff(?![\x00\xd0-\xd7])")  # past a scan's data: not a stuffed 0xFF, not a restart


def image_data_url(path: str | Path, max_side: int | None = None) -> str:
    """The data URL of the image at `path` for a chat-completions request (see the module's docstring)."""
    return data_url_bytes(path, max_side).decode("ascii")


def data_url_bytes(path: str | Path, max_side: int | None = None) -> bytes:
    """`image_data_url` as ASCII bytes (what goes into the request body; no JSON escaping needed)."""
    mime, data = wire_bytes(path, max_side)
    return f"data:{mime};base64,".encode("ascii") + base64.b64encode(data)


def wire_bytes(path: str | Path, max_side: int | None = None) -> tuple[str, bytes]:
    """(MIME type, bytes) of the image at `path` as it goes to a server: the file stripped of its metadata when it
    can go as it is, else a PNG of `load_image`'s pixels, shrunk so that the longer side is at most `max_side`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        data = b""  # load_image below says what is wrong with the file
    stripped = _strip_png(data, max_side) if data.startswith(PNG_SIGNATURE) else \
        _strip_jpeg(data, max_side) if data.startswith(b"\xff\xd8") else None
    if stripped is not None:
        return stripped
    return "image/png", _encode_png(path, max_side)


def _encode_png(path: Path, max_side: int | None) -> bytes:
    from PIL import Image

    img = load_image(path)
    if max_side and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # about 7x faster than PIL's default level 6, same pixels
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------------------- PNG
def _png_chunks(data: bytes) -> list[tuple[bytes, bytes, bytes]] | None:
    """(type, payload, whole chunk) of each chunk up to IEND; None when the file is cut or malformed."""
    chunks, i = [], len(PNG_SIGNATURE)
    while i + 12 <= len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind, end = data[i + 4:i + 8], i + 12 + length
        if end > len(data):
            return None
        chunks.append((kind, data[i + 8:i + 8 + length], data[i:end]))
        if kind == b"IEND":
            return chunks
        i = end
    return None


def _strip_png(data: bytes, max_side: int | None) -> tuple[str, bytes] | None:
    chunks = _png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        return None
    kinds = {kind for kind, _, _ in chunks}
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if (depth != 8 or colour not in (2, 6) or compression or filtering or b"tRNS" in kinds or b"acTL" in kinds
            or (max_side and max(width, height) > max_side)):
        return None
    idat = b"".join(payload for kind, payload, _ in chunks if kind == b"IDAT")
    if colour == 6 and not _alpha_is_opaque(data, idat, width, height, interlaced=bool(interlace)):
        return None
    return "image/png", PNG_SIGNATURE + b"".join(whole for kind, _, whole in chunks if kind in _PNG_KEPT)


def _predict(filter_type: int, left: int, up: int, up_left: int) -> int:
    """The PNG filter's predictor of a byte from its left, upper and upper-left neighbours (same channel)."""
    if filter_type == 0:
        return 0
    if filter_type == 1:
        return left
    if filter_type == 2:
        return up
    if filter_type == 3:
        return (left + up) // 2
    p = left + up - up_left  # Paeth
    pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
    return left if pa <= pb and pa <= pc else up if pb <= pc else up_left


def _opaque_filtered() -> tuple[list[list[int]], list[list[int]]]:
    """What the filtered alpha bytes of a row of an all-255 alpha channel are, for each filter type (0..4) and for
    the first row (nothing above) or a later one: (first pixel of the row, every other pixel), each [first row,
    later rows][filter type]."""
    first = [[(255 - _predict(f, 0, up, 0)) % 256 for f in range(5)] for up in (0, 255)]
    rest = [[(255 - _predict(f, 255, up, up)) % 256 for f in range(5)] for up in (0, 255)]
    return first, rest


_OPAQUE_FIRST, _OPAQUE_REST = _opaque_filtered()


def _alpha_is_opaque(data: bytes, idat: bytes, width: int, height: int, *, interlaced: bool) -> bool:
    """Whether every alpha byte of an 8-bit RGBA PNG is 255.

    Read from the filtered scanlines, without unfiltering them: with 4 bytes per pixel a byte's predictor reads
    only bytes of its own channel, and unfiltering a row is one-to-one given the row above; so, row by row from the
    top, the alpha bytes are all 255 exactly when each row's filtered alpha bytes are what a row of 255s filters to
    under that row's filter type (`_opaque_filtered`). An interlaced file is decoded instead.
    """
    import numpy as np

    if interlaced:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.getchannel("A").getextrema() == (255, 255)
    try:
        raw = zlib.decompress(idat)
    except zlib.error:
        return False
    stride = 1 + 4 * width
    if len(raw) != height * stride:
        return False
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride)
    filters = rows[:, 0].astype(np.intp)
    if filters.max(initial=0) > 4:
        return False
    later = (np.arange(height) > 0).astype(np.intp)
    alpha = rows[:, 4::4]  # byte 0 of a row is its filter type, then R, G, B, A per pixel
    first = np.asarray(_OPAQUE_FIRST, np.uint8)[later, filters]
    rest = np.asarray(_OPAQUE_REST, np.uint8)[later, filters]
    return bool((alpha[:, 0] == first).all() and (alpha[:, 1:] == rest[:, None]).all())


# ------------------------------------------------------------------------------------------------------------ JPEG
def _strip_jpeg(data: bytes, max_side: int | None) -> tuple[str, bytes] | None:
    """The JPEG without its APPn segments (but a thumbnail-free JFIF header and Adobe's transform flag), comments
    and whatever follows EOI; None when it is not an 8-bit Huffman JPEG of 1 or 3 components, or is cut."""
    out, i, frame = [b"\xff\xd8"], 2, False
    while i < len(data):
        if data[i] != 0xFF:
            return None
        while i < len(data) and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= len(data):
            return None
        marker = data[i]
        i += 1
        if marker == 0xD9:  # EOI: the rest of the file is not part of the image
            return ("image/jpeg", b"".join(out) + b"\xff\xd9") if frame else None
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            out.append(bytes((0xFF, marker)))
            continue
        if i + 2 > len(data):
            return None
        (length,) = struct.unpack(">H", data[i:i + 2])
        segment, payload = data[i - 2:i + length], data[i + 2:i + length]
        i += length
        if i > len(data) or length < 2:
            return None
        if marker in _JPEG_OTHER_FRAMES:
            return None
        if marker in _JPEG_FRAMES:
            precision, h, w, components = struct.unpack(">BHHB", payload[:6])
            if precision != 8 or components not in (1, 3) or (max_side and max(w, h) > max_side):
                return None
            frame = True
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:  # APPn, COM
            if marker == 0xE0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
                out.append(b"\xff\xe0\x00\x10" + payload[:12] + b"\x00\x00")  # JFIF, no thumbnail
            elif marker == 0xEE and payload.startswith(b"Adobe"):
                out.append(segment)  # its transform flag says whether 3 components are YCbCr or RGB
            continue
        out.append(segment)
        if marker == 0xDA:  # start of scan: the entropy-coded data runs to the next marker
            m = _JPEG_NEXT_MARKER.search(data, i)
            if m is None:
                return None
            out.append(data[i:m.start()])
            i = m.start()
    return None
