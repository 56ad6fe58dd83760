"""Wiring shared by the CLI and the web app: which library, which model.

Built once per command from arguments and environment (one settings object, as in
immich's ML service), so handlers receive ready services and never read os.environ.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indexer.library import Library, default_library_dir, open_library
from indexer.tagging import TagService
from models import (
    DEFAULT_PRESET,
    PRESETS,
    ClipEncoder,
    default_precision,
    load_encoder,
    preset_from_env,
)
from search.query import SearchService

TINY_MODEL_WARNING = (
    "note: using the tiny-test model — random weights with NO semantic meaning; results "
    "only demonstrate the mechanics. Use --model multilingual for real searches."
)


@dataclass(frozen=True)
class Settings:
    library_dir: Path
    model: str | None  # None: whatever the library was indexed with, else the default
    checkpoint: Path | None = None
    precision: str = "fp32"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        library: str | None = None,
        model: str | None = None,
        checkpoint: str | None = None,
        precision: str | None = None,
    ) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            library_dir=Path(library).expanduser() if library else default_library_dir(env),
            model=model or (preset_from_env(env) if env.get("KEZHAO_MODEL") else None),
            checkpoint=Path(checkpoint).expanduser() if checkpoint else None,
            precision=precision or env.get("KEZHAO_PRECISION") or default_precision(),
        )


def preset_of_model_id(model_id: str | None) -> str | None:
    """The preset a library was indexed with, read from its recorded model id."""
    if not model_id or "@checkpoint:" in model_id:
        return None
    name = model_id.split(":", 1)[0]
    return name if name in PRESETS else None


@dataclass
class Services:
    """Everything a command or a web handler needs, created lazily."""

    settings: Settings
    library: Library
    _encoder: ClipEncoder | None = field(default=None, repr=False)
    _search: SearchService | None = field(default=None, repr=False)
    _tags: TagService | None = field(default=None, repr=False)

    @property
    def preset(self) -> str:
        if self.settings.model:
            return self.settings.model
        return preset_of_model_id(self.library.catalog.model_id()) or DEFAULT_PRESET

    def encoder(self) -> ClipEncoder:
        if self._encoder is None:
            self._encoder = load_encoder(
                self.preset,
                cache_dir=self.library.models_dir,
                checkpoint=self.settings.checkpoint,
                precision=self.settings.precision,
            )
        return self._encoder

    @property
    def search(self) -> SearchService:
        if self._search is None:
            self._search = SearchService(self.library, self.encoder)
        return self._search

    @property
    def tags(self) -> TagService:
        """Suggested tags and their review; loads the model only to encode new prompts."""
        if self._tags is None:
            self._tags = TagService(self.library, self.encoder)
        return self._tags

    def close(self) -> None:
        self.library.close()


def open_services(settings: Settings) -> Services:
    return Services(settings=settings, library=open_library(settings.library_dir))
