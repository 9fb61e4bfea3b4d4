"""Every file format and pixel mode the indexer and the service accept, and the ones they refuse."""

import io
import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT
from imgsim.images import imaging

W, H = 24, 16


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _gradient(mode: str) -> Image.Image:
    base = Image.fromarray(np.linspace(0, 255, W * H * 3).reshape(H, W, 3).astype(np.uint8))
    return base.convert(mode)


CASES = [
    ("JPEG", "RGB"),
    ("JPEG", "L"),
    ("JPEG", "CMYK"),
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "LA"),
    ("PNG", "L"),
    ("PNG", "P"),
    ("PNG", "1"),
    ("GIF", "P"),
    ("WEBP", "RGB"),
    ("WEBP", "RGBA"),
    ("BMP", "RGB"),
    ("BMP", "P"),
    ("TIFF", "RGB"),
    ("TIFF", "CMYK"),
    ("TIFF", "RGBA"),
    ("TIFF", "F"),
]


@pytest.mark.parametrize(("fmt", "mode"), CASES, ids=[f"{f}-{m}" for f, m in CASES])
def test_every_format_and_mode_decodes_to_upright_rgb(tmp_path, fmt, mode):
    path = tmp_path / f"picture.{fmt.lower()}"
    path.write_bytes(_encode(_gradient(mode), fmt))
    image = imaging.open_rgb(path)
    assert image.mode == "RGB"
    assert image.size == (W, H)


def test_sixteen_bit_images_are_scaled_not_clipped():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    data = _encode(Image.fromarray(values), "PNG")
    pixels = np.asarray(imaging.decode_rgb(data))
    assert pixels[0, :, 0].tolist() == [0, 128, 255]


def test_transparent_pixels_become_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red; the rest fully transparent black
    pixels = np.asarray(imaging.decode_rgb(_encode(Image.fromarray(rgba), "PNG")))
    assert pixels[0, 0].tolist() == [255, 0, 0]
    assert pixels[1, 1].tolist() == [255, 255, 255]


def test_palette_transparency_is_composited_over_white():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 0), 1)
    data = _encode(image, "PNG", transparency=0)
    assert np.asarray(imaging.decode_rgb(data)).tolist() == [[[255, 255, 255], [0, 255, 0]]]


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    red, green, blue = np.asarray(imaging.decode_rgb(buffer.getvalue()))[4, 4]
    assert red > 200 and blue < 50


@pytest.mark.parametrize(("min_side", "width"), [(None, 80), (20, 20)], ids=["full", "shrunk"])
def test_exif_orientation_is_applied(min_side, width):
    # Stored 160x80: red left half, blue right half. Orientation 6 means "rotate 90 deg clockwise
    # to display", so the upright picture is 80x160 (or 20x40 shrunk) with red on top.
    pixels = np.zeros((80, 160, 3), dtype=np.uint8)
    pixels[:, :80] = (255, 0, 0)
    pixels[:, 80:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(pixels), "JPEG", exif=exif.tobytes(), quality=95)
    upright = np.asarray(imaging.decode_rgb(data, min_side=min_side))
    assert upright.shape == (2 * width, width, 3)
    top, bottom = upright[width // 4, width // 2], upright[-width // 4, width // 2]
    assert top[0] > 200 and top[2] < 60  # top: red
    assert bottom[2] > 200 and bottom[0] < 60  # bottom: blue


def test_truncated_jpeg_is_refused_with_a_reason():
    data = _encode(_gradient("RGB").resize((200, 200)), "JPEG")
    with pytest.raises(imaging.UnreadableImage, match="truncated"):
        imaging.decode_rgb(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "empty"), (b"hello, I am a text file\n", "not an image"), (bytes(range(256)) * 8, "not an image")],
)
def test_non_images_are_refused_with_a_reason(data, reason):
    with pytest.raises(imaging.UnreadableImage, match=reason):
        imaging.decode_rgb(data)


def test_missing_file_is_refused():
    with pytest.raises(imaging.UnreadableImage, match="not found"):
        imaging.open_rgb("/nonexistent/picture.jpg")


def test_images_over_the_pixel_limit_are_refused_before_decoding():
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(imaging.ImageTooLarge, match="over the limit"):
        imaging.decode_rgb(data, max_pixels=5_000)
    assert imaging.decode_rgb(data, max_pixels=10_000).size == (100, 100)


def test_image_extensions_are_recognised_case_insensitively():
    assert imaging.is_image_path("a/B.JPG") and imaging.is_image_path("x.tiff")
    assert not imaging.is_image_path("labels.csv")


def test_a_bomb_is_refused_with_the_configured_limit_not_pillows():
    data = _encode(Image.new("1", (10_000, 10_000)), "PNG")  # 100 Mpx: over Pillow's own 89 Mpx
    with pytest.raises(imaging.ImageTooLarge, match=r"over the limit of 64,000,000") as refused:
        imaging.decode_rgb(data, max_pixels=64_000_000)
    assert "89" not in str(refused.value)


SHRINK_CASES = [*CASES, ("PNG", "I;16")]


@pytest.mark.parametrize(("fmt", "mode"), SHRINK_CASES, ids=[f"{f}-{m}" for f, m in SHRINK_CASES])
def test_shrinking_while_decoding_gives_the_reduced_full_picture(fmt, mode):
    """min_side decodes a 96x64 picture at a quarter of its size, as the full decode reduced would."""
    base = np.linspace(0, 255, 96 * 64 * 3).reshape(64, 96, 3).astype(np.uint8)
    image = Image.fromarray(base).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        image = Image.fromarray(np.asarray(image).astype(np.uint16) * 257)
    data = _encode(image, fmt)
    shrunk = imaging.decode_rgb(data, min_side=16)
    expected = imaging.decode_rgb(data).reduce(4)
    assert shrunk.mode == "RGB" and shrunk.size == expected.size == (24, 16)
    difference = np.abs(np.asarray(shrunk, dtype=float) - np.asarray(expected, dtype=float))
    assert difference.mean() < 3, difference.mean()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_photo_keeps_at_least_min_side_pixels_on_each_side(fmt):
    data = _encode(_gradient("RGB").resize((1000, 300)), fmt)
    for min_side in (40, 100, 299):
        width, height = imaging.decode_rgb(data, min_side=min_side).size
        assert min_side <= height < 2 * min_side and width / height == pytest.approx(1000 / 300, rel=0.01)
    assert imaging.decode_rgb(data, min_side=301).size == (1000, 300)  # smaller than asked: whole


@pytest.mark.parametrize("orientation", [1, 6])
@pytest.mark.parametrize(
    ("fmt", "size"), [("JPEG", (4000, 3000)), ("JPEG", (1203, 901)), ("PNG", (1500, 1000))]
)
def test_a_decode_for_the_network_stands_for_the_smaller_one_where_sizes_allow(fmt, size, orientation):
    """A camera JPEG decoded at 1/4 scale for the network (min side 448), halved, gives the size of
    its 1/8-scale decode for local features (320) and its pixels within a few levels; where no whole
    factor gives that size, the caller decodes again."""
    rng = np.random.default_rng(3)
    picture = Image.fromarray(rng.integers(0, 256, (size[1] // 50, size[0] // 50, 3), np.uint8)).resize(size)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(picture, fmt, exif=exif.tobytes())
    for min_side in (64, 320, 448):
        assert imaging.decoded_size(data, min_side) == imaging.decode_rgb(data, min_side=min_side).size
    wanted = imaging.decode_rgb(data, min_side=320)
    stand_in = imaging.shrunk_as_decoded(imaging.decode_rgb(data, min_side=448), data, 320)
    if fmt == "JPEG" and size == (4000, 3000):
        assert (
            stand_in is not None
            and stand_in.size == wanted.size == (500, 375)[:: 1 if orientation == 1 else -1]
        )
        difference = np.abs(np.asarray(stand_in, np.int16) - np.asarray(wanted, np.int16))
        assert difference.max() <= 4 and difference.mean() < 0.5, (difference.max(), difference.mean())
    elif stand_in is not None:  # the same decode, or a whole factor of it
        assert stand_in.size == wanted.size
    assert imaging.shrunk_as_decoded(imaging.decode_rgb(data, min_side=64), data, 320) is None  # smaller


# Decodes the given file in N threads at once, as concurrent uploads to one worker do, and reports
# the process's memory (MB) before, at its peak and afterwards.
MEMORY_PROBE = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from imgsim.images import imaging
def status(field):  # VmHWM, the peak, is this process's own (ru_maxrss counts the forking parent's)
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024
def rss():
    return status("VmRSS")
data, threads = open(sys.argv[1], "rb").read(), int(sys.argv[2])
base = rss()
with ThreadPoolExecutor(threads) as pool:
    decodes = [pool.submit(imaging.decode_rgb, data, 64_000_000, 598) for _ in range(threads)]
    sizes = [future.result().size for future in decodes]  # a failed decode fails the probe
print(json.dumps({"base": base, "peak": status("VmHWM"), "after": rss(), "sizes": sizes}))
"""


def _decode_memory(path, threads: int) -> dict:
    command = [sys.executable, "-c", MEMORY_PROBE, str(path), str(threads)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _rgba16_png(side: int) -> bytes:
    """A 16-bit RGBA PNG of side x side pixels, a few hundred KB on the wire."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes(range(256)) * (side * 8 // 256) + bytes(side * 8 % 256)
    packer = zlib.compressobj(1)
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_concurrent_large_decodes_are_bounded_and_give_their_memory_back(tmp_path):
    """Four 36-Mpx 16-bit RGBA PNGs at once took 2.4 GB and kept 1.1 GB; now one at a time, banded."""
    path = tmp_path / "large.png"
    path.write_bytes(_rgba16_png(6000))
    memory = _decode_memory(path, threads=4)
    assert memory["sizes"] == [[600, 600]] * 4  # shrunk by 10, still twice InceptionV3's input
    assert memory["peak"] - memory["base"] < 500, memory
    assert memory["after"] - memory["base"] < 100, memory


def test_a_tiny_gif_with_a_huge_screen_costs_little_memory(tmp_path):
    """37 bytes declaring a 7999x7999 screen cost 300 MB to decode; shrunk in bands, far less."""
    gif = bytearray(_encode(Image.new("P", (1, 1)), "GIF"))
    gif[6:10] = struct.pack("<HH", 7999, 7999)
    path = tmp_path / "screen.gif"
    path.write_bytes(bytes(gif))
    memory = _decode_memory(path, threads=1)
    assert memory["sizes"] == [[616, 616]]  # shrunk by 13
    assert memory["peak"] - memory["base"] < 150, memory


def test_a_strip_too_thin_to_shrink_is_still_decoded_within_the_pixel_cap():
    """A 1,000,000 x 64 PNG (187 KB) came back whole, 64 Mpx: every later stage copied it."""
    buffer = io.BytesIO()
    Image.new("RGB", (1_000_000, 64), (200, 30, 30)).save(buffer, "PNG")
    image = imaging.decode_rgb(buffer.getvalue(), 64_000_000, 598)
    assert image.size[0] * image.size[1] <= imaging.MAX_DECODED_PIXELS
    assert image.size == (250_000, 16) and image.getpixel((10, 10)) == (200, 30, 30)


def _numpy_trim(image: Image.Image, tolerance: int = 24, keep: float = 0.2) -> tuple[int, int, int, int]:
    """trim_border's box as it was computed before, in NumPy (28 ms on a 1000x750 photo)."""
    pixels = np.asarray(image, dtype=np.int16)

    def box(limit):
        content = np.abs(pixels - pixels[0, 0]).max(axis=2) > limit
        rows, cols = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
        return None if not len(rows) else (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)

    strict = box(tolerance)
    if strict is None or strict == (0, 0, image.width, image.height):
        return (0, 0, image.width, image.height)
    loose = box(3 * tolerance) or strict
    ring = imaging.RINGING
    left, top = min(loose[0], strict[0] + ring), min(loose[1], strict[1] + ring)
    right, bottom = max(loose[2], strict[2] - ring), max(loose[3], strict[3] - ring)
    if right <= left or bottom <= top or (right - left) * (bottom - top) < keep * image.width * image.height:
        return (0, 0, image.width, image.height)
    return (left, top, right, bottom)


def test_border_trimming_cuts_exactly_where_the_numpy_version_did():
    rng = np.random.default_rng(5)
    for n in range(24):
        width, height = (int(v) for v in rng.integers(40, 200, 2))
        pixels = np.empty((height, width, 3), np.uint8)
        pixels[:] = rng.integers(0, 256, 3)
        x0, y0 = (int(v) for v in rng.integers(0, 15, 2))
        x1, y1 = width - int(rng.integers(0, 15)), height - int(rng.integers(0, 15))
        pixels[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3))
        image = Image.fromarray(pixels)
        if n % 2:  # JPEG ringing along the frame's inner edge
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=60)
            image = Image.open(buffer).convert("RGB")
        assert imaging.content_box(image) == _numpy_trim(image), n
