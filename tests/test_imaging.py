"""Every file format and pixel mode the indexer and the service accept, and the ones they refuse."""

import io

import numpy as np
import pytest
from PIL import Image

import imaging

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


def test_exif_orientation_is_applied():
    # Stored 40x20: red left half, blue right half. Orientation 6 means "rotate 90 deg clockwise
    # to display", so the upright picture is 20x40 with red on top.
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(pixels), "JPEG", exif=exif.tobytes(), quality=95)
    upright = np.asarray(imaging.decode_rgb(data))
    assert upright.shape == (40, 20, 3)
    assert upright[5, 10, 0] > 200 and upright[5, 10, 2] < 60  # top: red
    assert upright[35, 10, 2] > 200 and upright[35, 10, 0] < 60  # bottom: blue


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
