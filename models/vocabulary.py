"""The bilingual tag vocabulary: which tags exist and how to describe them to CLIP.

The built-in vocabulary ships as ``models/vocabulary.json`` so it can be read, reviewed and
extended without touching code. Each tag has a stable key (stored with every decision, so it
never changes once shipped), a Chinese and an English label (what people see and what XMP
keywords carry), and English prompts: several phrasings of the same idea whose embeddings are
averaged, because one phrasing alone lets a single odd word dominate the text embedding.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from models.errors import ModelError

KEY_PATTERN = re.compile(r"^\w[\w-]{0,39}$")
"""Keys: letters (any script), digits, ``_`` and ``-``; at most 40 characters. No spaces,
``|`` or commas, because keys travel through command lines and XMP hierarchies."""

MAX_LABEL_CHARS = 60
MAX_PROMPT_CHARS = 200
MAX_PROMPTS = 12


class VocabularyError(ModelError):
    """The vocabulary (or one tag definition) is malformed; the message names the entry."""


@dataclass(frozen=True)
class TagDefinition:
    key: str
    label_zh: str
    label_en: str
    prompts: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "zh": self.label_zh, "en": self.label_en,
                "prompts": list(self.prompts)}


@dataclass(frozen=True)
class Vocabulary:
    version: int
    tags: tuple[TagDefinition, ...]

    def __len__(self) -> int:
        return len(self.tags)

    def get(self, key: str) -> TagDefinition | None:
        return next((t for t in self.tags if t.key == key), None)

    def keys(self) -> list[str]:
        return [t.key for t in self.tags]

    def fingerprint(self) -> str:
        """Changes whenever any key, label or prompt changes; stored by the catalog to
        notice a new vocabulary (e.g. after an upgrade) and refresh suggestions."""
        canonical = json.dumps([t.as_dict() for t in self.tags], ensure_ascii=False,
                               sort_keys=True)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def tag_problems(
    key: Any, label_zh: Any, label_en: Any, prompts: Any, *, require_prompts: bool = True
) -> list[str]:
    """Everything wrong with one tag definition, as short phrases (empty when valid).

    Shared by the vocabulary loader and by user-defined tags; a user tag may have no prompts
    when it is defined only by example photos (``require_prompts=False``).
    """
    problems: list[str] = []
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        problems.append("key must be 1-40 letters, digits, '_' or '-' (no spaces)")
    for name, label in (("zh", label_zh), ("en", label_en)):
        if not isinstance(label, str) or not label.strip():
            problems.append(f"missing {name} label")
        elif len(label) > MAX_LABEL_CHARS or "|" in label or "\n" in label:
            problems.append(f"{name} label must be one line of at most {MAX_LABEL_CHARS} "
                            "characters without '|'")
    if not isinstance(prompts, Sequence) or isinstance(prompts, str):
        problems.append("prompts must be a list of strings")
    else:
        if require_prompts and not prompts:
            problems.append("needs at least one prompt")
        if len(prompts) > MAX_PROMPTS:
            problems.append(f"at most {MAX_PROMPTS} prompts")
        for prompt in prompts:
            if not isinstance(prompt, str) or not prompt.strip():
                problems.append("prompts must be non-empty strings")
                break
            if len(prompt) > MAX_PROMPT_CHARS:
                problems.append(f"prompts must be at most {MAX_PROMPT_CHARS} characters")
                break
    return problems


def parse_vocabulary(data: Mapping[str, Any], source: str = "vocabulary") -> Vocabulary:
    """Validate decoded JSON into a Vocabulary; the first problem raises, naming its entry."""
    if not isinstance(data, Mapping) or not isinstance(data.get("tags"), list):
        raise VocabularyError(f"{source}: expected an object with a 'tags' list")
    version = data.get("version", 1)
    if not isinstance(version, int):
        raise VocabularyError(f"{source}: 'version' must be an integer")
    tags: list[TagDefinition] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data["tags"]):
        where = f"{source}: tag #{index + 1}"
        if not isinstance(entry, Mapping):
            raise VocabularyError(f"{where}: expected an object")
        key = entry.get("key")
        if isinstance(key, str):
            where += f" ({key!r})"
        problems = tag_problems(key, entry.get("zh"), entry.get("en"), entry.get("prompts", []))
        if problems:
            raise VocabularyError(f"{where}: {'; '.join(problems)}")
        if key in seen:
            raise VocabularyError(f"{where}: duplicate key, already used by tag #{seen[key]}")
        seen[key] = index + 1
        tags.append(
            TagDefinition(key, entry["zh"].strip(), entry["en"].strip(),
                          tuple(p.strip() for p in entry["prompts"]))
        )
    return Vocabulary(version=version, tags=tuple(tags))


def load_vocabulary(path: Path | None = None) -> Vocabulary:
    """Load and validate a vocabulary file (the built-in one when ``path`` is None)."""
    if path is None:
        text = resources.files("models").joinpath("vocabulary.json").read_text("utf-8")
        source = "built-in vocabulary"
    else:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise VocabularyError(f"{source}: cannot read vocabulary file ({err})") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise VocabularyError(f"{source}: not valid JSON (line {err.lineno}: {err.msg})") from err
    return parse_vocabulary(data, source)
