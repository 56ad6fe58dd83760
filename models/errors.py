"""Exceptions raised by ``models``: each carries a message fit to show a user as is."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class ModelError(Exception):
    """A model could not be loaded or used; the message says why."""


class UnknownPresetError(ModelError):
    """A preset name that does not exist; lists the valid ones so the fix is obvious."""

    def __init__(self, name: str, valid: Sequence[str]) -> None:
        self.name = name
        self.valid = list(valid)
        super().__init__(f"Unknown model preset {name!r}. Valid presets: {', '.join(self.valid)}.")


class ModelUnavailableError(ModelError):
    """A preset's files are neither in the library's models folder nor downloadable.

    Raised instead of the hub's or the OS's own exceptions so the CLI and the web app can show
    one paragraph that says what to do, with no traceback.
    """

    def __init__(self, preset: str, folder: Path, reason: str) -> None:
        self.preset = preset
        self.folder = Path(folder)
        self.reason = reason
        super().__init__(
            f"The {preset!r} model is not available: its files were not found in "
            f"{self.folder} and could not be downloaded ({reason}). To provide them, run "
            f"`kezhao models download {preset}` on a machine with internet access and copy "
            f"that library's models/ folder to {self.folder}, or pass --checkpoint PATH to "
            f"load the weights from a local file."
        )
