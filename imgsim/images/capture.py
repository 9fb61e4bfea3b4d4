"""When a photo was taken, as its camera wrote it (EXIF DateTimeOriginal and its fraction of a
second): two files whose capture times differ are two shots, however alike their framing (a
tripod, a burst at ten frames a second); a copy keeps its picture's time, or has none."""

from __future__ import annotations

import datetime
from pathlib import Path

from PIL import ExifTags, Image

TAKEN = ExifTags.Base.DateTimeOriginal
FRACTION = ExifTags.Base.SubsecTimeOriginal
FORMAT = "%Y:%m:%d %H:%M:%S"


Taken = tuple[float, float | None]  # whole seconds (the camera's clock, no zone), the fraction if written


def taken_at(path: Path) -> Taken | None:
    """When the photo in ``path`` was taken; None where the file holds no such time or cannot be
    read. Reads the header only."""
    try:
        with Image.open(path) as image:
            exif = image.getexif().get_ifd(ExifTags.IFD.Exif)
    except (OSError, ValueError, SyntaxError):
        return None
    stamp, fraction = exif.get(TAKEN), exif.get(FRACTION)
    try:
        moment = datetime.datetime.strptime(str(stamp).strip("\x00 "), FORMAT)
    except ValueError:
        return None
    digits = "".join(c for c in str(fraction or "") if c.isdigit())
    return moment.replace(tzinfo=datetime.UTC).timestamp(), float(f"0.{digits}") if digits else None


def apart(first: Taken | None, second: Taken | None) -> float | None:
    """Seconds between two capture times (None unless both are known), to the fraction of a
    second where both files hold it: an editor that drops the fraction keeps the second."""
    if first is None or second is None:
        return None
    fractions = first[1] is not None and second[1] is not None
    extra = (first[1] or 0.0) - (second[1] or 0.0) if fractions else 0.0
    return round(abs(first[0] - second[0] + extra), 3)
