"""What a photo's EXIF, file name and folders say about it: date, camera, client, project.

Pure functions over values already read (an ``Image.Exif``, a file name, a path): no file
access, so every rule is testable on plain strings.

How kezhao decides a photo's client and project
-----------------------------------------------

1. ``kezhao index --client NAME`` wins: every photo indexed by that run belongs to NAME,
   and the first folder under the indexed root is the project.
2. Otherwise a file named by the convention ``客户姓名_日期_描述.jpg`` names its client,
   e.g. ``张三_20231015_会议.jpg`` is client 张三, date 2023-10-15, description 会议.
   The date may be written ``20231015``, ``2023-10-15`` or ``2023.10.15`` and must be a real
   calendar date; the description is optional (``李四_2024-01-05.jpg``). Names from cameras
   and apps (``IMG_20231015_123456.jpg``, ``DSC_…``, ``PXL_…``, ``微信图片_…``) are not
   client names. If the photo sits at least two folders deep, the second folder under the
   root is its project.
3. Otherwise folders decide: ``<root>/<client>/<project>/…``. The first folder under the
   root is the client, the second the project; deeper folders are ignored. A photo directly
   in the root has no client.

The date a photo was taken comes from EXIF ``DateTimeOriginal`` (or ``DateTimeDigitized``
when that is missing); a date in the file name is used only when the photo has neither.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path, PurePath

from PIL import Image

_EXIF_IFD = 0x8769
_MAKE = 0x010F
_MODEL = 0x0110
_DATETIME_ORIGINAL = 0x9003
_DATETIME_DIGITIZED = 0x9004

# Pillow parses sub-IFDs lazily and raises a variety of errors on malformed offsets.
_EXIF_ERRORS = (
    KeyError, ValueError, TypeError, OSError, SyntaxError, struct.error, EOFError, IndexError,
)

_EXIF_DATETIME = re.compile(
    r"(\d{4})[:\-/.](\d{1,2})[:\-/.](\d{1,2})"
    r"(?:[ T]+(\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?"
)
_EXIF_YEARS = range(1800, 2101)
_NAME_YEARS = range(1900, 2101)
_EMBEDDED_YEARS = range(1990, 2101)

_CONVENTION_DATE = re.compile(
    r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"
    r"|(?P<y2>\d{4})(?P<sep>[-.])(?P<m2>\d{2})(?P=sep)(?P<d2>\d{2})"
)
# Prefixes cameras, phones and apps put before a date; never a client's name.
_DEVICE_PREFIXES = frozenset(
    {
        "img", "dsc", "dscn", "dscf", "dsci", "pxl", "vid", "mvimg", "pano", "burst",
        "screenshot", "screen shot", "screenrecord", "wechat", "weixin", "mmexport", "p",
        "photo", "image", "pic", "picture", "camera", "snapchat", "signal", "whatsapp",
        "gopr", "dji", "sam", "wp", "mov", "video", "dcim",
        "微信图片", "微信截图", "屏幕截图", "截图", "截屏", "qq图片", "照片", "图片", "相片",
        "录屏",
    }
)
_FILE_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")
_DIGIT_RUN = re.compile(r"(?<!\d)\d{8,}(?!\d)")
_SEPARATED_DATE = re.compile(r"(?<!\d)(\d{4})([-_. /])(\d{1,2})\2(\d{1,2})(?!\d)")
_CHINESE_DATE = re.compile(r"(?<!\d)(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?")


@dataclass(frozen=True)
class CameraInfo:
    """When and with what a photo was taken, as far as its EXIF can be trusted."""

    taken_at: datetime | None
    make: str | None
    model: str | None


@dataclass(frozen=True)
class NameParts:
    """The parts of a file named by the convention ``客户姓名_日期_描述``."""

    client: str
    date: date
    description: str | None


@dataclass(frozen=True)
class Placement:
    """Where a photo belongs: client (and which rule named it), project, name details."""

    client: str | None
    client_source: str | None
    project: str | None
    description: str | None
    name_date: date | None


def read_camera_info(exif: Image.Exif) -> CameraInfo:
    """Capture time and camera from EXIF; anything missing or malformed becomes None.

    The capture time is ``DateTimeOriginal``, else ``DateTimeDigitized``. IFD0 ``DateTime``
    is deliberately not used: it is the time the file was last changed, which editing and
    export tools rewrite (the sample camera files all carry the day they were curated), so
    it would give confidently wrong dates. The time is naive local time, as cameras record
    it. Never raises, whatever the EXIF holds.
    """
    sub = _sub_ifd(exif, _EXIF_IFD)
    taken_at = parse_exif_datetime(sub.get(_DATETIME_ORIGINAL))
    if taken_at is None:
        taken_at = parse_exif_datetime(sub.get(_DATETIME_DIGITIZED))
    return CameraInfo(
        taken_at=taken_at,
        make=_clean_text(_safe_get(exif, _MAKE)),
        model=_clean_text(_safe_get(exif, _MODEL)),
    )


def _sub_ifd(exif: Image.Exif, tag: int) -> dict:
    try:
        return dict(exif.get_ifd(tag))
    except _EXIF_ERRORS:
        return {}


def _safe_get(exif: Image.Exif, tag: int) -> object:
    try:
        return exif.get(tag)
    except _EXIF_ERRORS:
        return None


def _clean_text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    text = " ".join(value.replace("\x00", " ").split())
    if not text or not any(ch.isalnum() for ch in text):
        return None
    return text


def parse_exif_datetime(value: object) -> datetime | None:
    """Parse an EXIF date such as ``2008:05:30 15:56:01``; None for anything implausible.

    Cameras with an unset clock write ``0000:00:00 00:00:00`` or blanks; such values and
    impossible dates give None rather than a guess.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not isinstance(value, str):
        return None
    match = _EXIF_DATETIME.match(value.strip("\x00 \t\r\n"))
    if match is None:
        return None
    year, month, day = (int(g) for g in match.group(1, 2, 3))
    hour, minute, second = (int(g) if g else 0 for g in match.group(4, 5, 6))
    if year not in _EXIF_YEARS:
        return None
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def parse_convention_name(filename: str) -> NameParts | None:
    """Read ``客户姓名_日期_描述.ext``; None unless the name really follows the convention.

    The client must look like a person's or company's name: not digits only and not a
    camera or app prefix (``IMG``, ``DSC``, ``PXL``, ``微信图片`` …), so that device file
    names that happen to contain a date are never mistaken for a client.
    """
    stem = _stem(filename)
    parts = [part.strip() for part in stem.split("_", 2)]
    if len(parts) < 2:
        return None
    client, date_text = parts[0], parts[1]
    if not _looks_like_client(client):
        return None
    match = _CONVENTION_DATE.fullmatch(date_text)
    if match is None:
        return None
    groups = ("y", "m", "d") if match.group("y") else ("y2", "m2", "d2")
    taken = _valid_date(*(match.group(g) for g in groups), years=_NAME_YEARS)
    if taken is None:
        return None
    description = parts[2] if len(parts) == 3 and parts[2] else None
    return NameParts(client=client, date=taken, description=description)


def _stem(filename: str) -> str:
    """The file name without folders and without an extension such as ``.jpg``.

    Only a short alphabetic suffix counts as an extension, so ``李四_2024.01.05`` keeps its
    date intact.
    """
    name = PurePath(filename).name
    return _FILE_SUFFIX.sub("", name).strip()


def _looks_like_client(text: str) -> bool:
    if not any(ch.isalpha() for ch in text):
        return False
    # "IMG", "DSC0001", "Screenshot 2023" → strip trailing digits/punctuation, then compare.
    core = re.sub(r"[\W\d_]+$", "", text).strip().lower()
    return bool(core) and core not in _DEVICE_PREFIXES


def _valid_date(year: str, month: str, day: str, *, years: range) -> date | None:
    y, m, d = int(year), int(month), int(day)
    if y not in years:
        return None
    try:
        return date(y, m, d)
    except ValueError:
        return None


def date_from_filename(filename: str) -> date | None:
    """The first plausible calendar date written anywhere in a file name, or None.

    Recognises ``20231015`` (alone or followed by a time, as in ``IMG_20231015_123456`` or
    WeChat's ``20231015123456``), ``2023-10-15`` / ``2023.10.15`` / ``2023_10_15`` and
    ``2023年10月15日``. Years outside 1990–2100 and impossible dates are ignored, so counters
    like ``DSC_12345678`` are not read as dates.
    """
    stem = _stem(filename)
    candidates: list[tuple[int, date]] = []
    for match in _DIGIT_RUN.finditer(stem):
        found = _date_from_digit_run(match.group())
        if found is not None:
            candidates.append((match.start(), found))
    for pattern, groups in ((_SEPARATED_DATE, (1, 3, 4)), (_CHINESE_DATE, (1, 2, 3))):
        for match in pattern.finditer(stem):
            found = _valid_date(*match.group(*groups), years=_EMBEDDED_YEARS)
            if found is not None:
                candidates.append((match.start(), found))
    return min(candidates, key=lambda item: item[0])[1] if candidates else None


def _date_from_digit_run(digits: str) -> date | None:
    """A date from ``YYYYMMDD`` optionally followed by ``hhmm``, ``hhmmss`` or milliseconds."""
    if len(digits) not in (8, 12, 14, 17):
        return None
    found = _valid_date(digits[:4], digits[4:6], digits[6:8], years=_EMBEDDED_YEARS)
    if found is None or len(digits) == 8:
        return found
    hour, minute = int(digits[8:10]), int(digits[10:12])
    second = int(digits[12:14]) if len(digits) >= 14 else 0
    if hour > 23 or minute > 59 or second > 59:
        return None
    return found


def place_photo(path: Path, root: Path, client_override: str | None = None) -> Placement:
    """Apply the client/project rule in this module's docstring to one photo.

    ``path`` must lie under ``root``. ``client_source`` records which rule named the client
    ("cli", "filename" or "folder") so the UI can say why a photo sits under a client.
    """
    try:
        folders = [part.strip() for part in path.relative_to(root).parts[:-1]]
    except ValueError as err:
        raise ValueError(f"{path} is not inside the indexed folder {root}") from err
    folders = [part for part in folders if part]
    named = parse_convention_name(path.name)
    description = named.description if named else None
    name_date = named.date if named else date_from_filename(path.name)
    override = (client_override or "").strip()
    if override:
        client, source = override, "cli"
        project = folders[0] if folders else None
    elif named is not None:
        client, source = named.client, "filename"
        project = folders[1] if len(folders) >= 2 else None
    elif folders:
        client, source = folders[0], "folder"
        project = folders[1] if len(folders) >= 2 else None
    else:
        client = source = project = None
    return Placement(
        client=client,
        client_source=source,
        project=project,
        description=description,
        name_date=name_date,
    )
