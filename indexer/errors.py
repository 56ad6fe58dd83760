"""Exceptions kezhao expects and explains: each message is fit to show a user as is.

``KezhaoError`` is the base every package derives from, so the CLI and the web app can turn
any of our failures into one clear line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DECODE_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "empty": "the file is empty (0 bytes)",
        "truncated": "truncated image data",
        "corrupt": "damaged image data",
        "not_image": "not an image (unrecognised data)",
        "text_file": "a text file, not an image",
        "too_large": "image has too many pixels to decode safely",
        "unsupported": "an image format kezhao does not index",
        "unreadable": "the file could not be read",
    }
)
"""Every reason a photo can be skipped, with the default line shown for it.

Stable short codes, because they are stored in the catalog and users filter by them.
"""


class KezhaoError(Exception):
    """Base for all errors kezhao raises on purpose; ``str(err)`` is a user-facing message."""


class DecodeError(KezhaoError):
    """A file could not be turned into pixels; ``reason`` says which kind of problem it is.

    The reason is one of :data:`DECODE_REASONS`, so a run can record and group skipped files;
    the message is one human line with the specifics (e.g. the pixel count that was refused).
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        if reason not in DECODE_REASONS:
            raise ValueError(f"unknown decode failure reason {reason!r}")
        self.reason = reason
        self.message = message or DECODE_REASONS[reason]
        super().__init__(self.message)

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, str]]:
        # Keep both fields across process pools (default pickling would pass only args).
        return (type(self), (self.reason, self.message))
