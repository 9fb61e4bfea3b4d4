"""Harder copies than issue 22's (issue 36): recoloured (hue, sepia, saturation), half-cropped,
captioned, watermarked, mirrored, and shown inside one photo viewer's window as a screenshot.

The caption, the watermark and the viewer's window are the same around every copy, as they are in
a real collection: what two pictures share only there must never make them copies. Every edit is
deterministic (no random numbers), so the planted set is the same on every run.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

from imgsim.images import edits

CAPTION = "Summer holidays 2024 - Lake Annecy"
WATERMARK = "(c) imgsim photos"
WINDOW = (1024, 720)  # the viewer's window, whatever the photo's size


def hue_shift(degrees: float) -> edits.Edit:
    """Every colour turned ``degrees`` around the hue circle (a recoloured copy)."""

    def edit(image: Image.Image) -> Image.Image:
        hsv = np.asarray(image.convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + round(degrees / 360 * 256)) % 256
        return Image.fromarray(hsv, "HSV").convert("RGB")

    return edit


def sepia(image: Image.Image) -> Image.Image:
    """The classic sepia tone (the matrix photo editors use)."""
    pixels = np.asarray(image, np.float32)
    matrix = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    return Image.fromarray(np.clip(pixels @ matrix.T, 0, 255).astype(np.uint8))


def saturated(image: Image.Image) -> Image.Image:
    """Colour enhanced twice over (a "vivid" filter): every hue kept, more saturated."""
    return ImageEnhance.Color(image).enhance(2.0)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def caption(image: Image.Image) -> Image.Image:
    """A white bar under the picture with the same line of text on every copy."""
    bar = max(24, image.height // 8)
    framed = Image.new("RGB", (image.width, image.height + bar), (255, 255, 255))
    framed.paste(image, (0, 0))
    ImageDraw.Draw(framed).text((bar // 3, image.height + bar // 5), CAPTION, (0, 0, 0), _font(bar // 2))
    return framed


def watermark(image: Image.Image) -> Image.Image:
    """The same text tiled over the whole picture, half transparent."""
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw, size = ImageDraw.Draw(layer), max(12, image.width // 16)
    for row, y in enumerate(range(0, image.height, size * 3)):
        for x in range(-(row % 2) * size * 4, image.width, size * 8):
            draw.text((x, y), WATERMARK, (255, 255, 255, 110), _font(size))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def screenshot(image: Image.Image) -> Image.Image:
    """The picture inside one photo viewer's window: its title bar, toolbar, buttons and status
    line are the same in every screenshot; the picture is fitted into the middle."""
    width, height = WINDOW
    window = Image.new("RGB", WINDOW, (40, 42, 48))
    draw = ImageDraw.Draw(window)
    draw.rectangle((0, 0, width, 36), fill=(225, 227, 232))
    for n, colour in enumerate(((236, 95, 90), (245, 190, 80), (98, 197, 85))):
        draw.ellipse((12 + 22 * n, 11, 26 + 22 * n, 25), fill=colour)
    draw.text((width // 2 - 90, 9), "Photo Viewer - Library", (30, 30, 30), _font(18))
    draw.rectangle((0, 36, width, 80), fill=(60, 62, 70))
    for n, label in enumerate(("Open", "Edit", "Share", "Rotate", "Delete", "Info")):
        draw.rounded_rectangle((14 + 96 * n, 44, 100 + 96 * n, 72), 6, fill=(90, 92, 104))
        draw.text((28 + 96 * n, 49), label, (240, 240, 240), _font(16))
    draw.rectangle((0, height - 30, width, height), fill=(225, 227, 232))
    draw.text((12, height - 25), "1 of 248  |  100%  |  sRGB", (40, 40, 40), _font(15))
    room = (width - 40, height - 80 - 30 - 20)
    shown = ImageOps.contain(image, room)
    window.paste(shown, ((width - shown.width) // 2, 80 + 10 + (room[1] - shown.height) // 2))
    return window


KINDS: dict[str, edits.Edit] = {
    "mirrored": ImageOps.mirror,
    "hue_shift_40": hue_shift(40),
    "sepia": sepia,
    "crop_50": edits.centre_crop(0.5),
    "caption": caption,
    "watermark": watermark,
    "screenshot": screenshot,
    "saturated": saturated,  # last: the kinds before keep the photos they were planted on
}
