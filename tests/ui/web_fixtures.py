"""Data for the web app tests: a folder of client photos built from the real test photos,
and services over a library indexed from it with the tiny (meaningless) test model."""

from __future__ import annotations

import shutil
from pathlib import Path

from ui.context import Services, Settings

# (source under testdata/photos, destination under the client folder tree)
CLIENT_TREE: tuple[tuple[str, str], ...] = (
    *((f"jpg/{n}.jpg", f"张三/展会/{n}.jpg")
      for n in ("Canon_40D", "Nikon_D70", "Pentax_K10D", "Sony_HDR-HC3")),
    *((f"jpg/orientation/landscape_{i}.jpg", f"张三/门店/landscape_{i}.jpg") for i in (1, 2, 3)),
    *((f"jpg/{n}.jpg", f"李四/产品/{n}.jpg")
      for n in ("Kodak_CX7530", "Olympus_C8080WZ", "Fujifilm_FinePix_E500")),
    ("heic/IMG_5195.HEIC", "李四/产品/IMG_5195.HEIC"),
    ("tiff/BSG1.tiff", "李四/BSG1.tiff"),
    *((f"jpg/orientation/portrait_{i}.jpg", f"王五/portrait_{i}.jpg") for i in (1, 2, 3)),
)


def build_client_tree(testdata: Path, dest: Path) -> Path:
    """Copy real photos into `<dest>/<client>/<project>/…` plus one empty (broken) file."""
    for src, rel in CLIENT_TREE:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(testdata / src, target)
    (dest / "李四" / "broken.jpg").write_bytes(b"")
    return dest


def make_services(library, encoder, model: str = "tiny-test") -> Services:
    """Services over an open library with an already loaded encoder (no model loading)."""
    return Services(Settings(library_dir=library.root, model=model), library, _encoder=encoder)


class RecordingProgress:
    """A pipeline progress object that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def start(self, total: int) -> None:
        self.calls.append(("start", total))

    def advance(self, n: int = 1) -> None:
        self.calls.append(("advance", n))

    def finish(self) -> None:
        self.calls.append(("finish", 0))

    @property
    def advanced(self) -> int:
        return sum(n for kind, n in self.calls if kind == "advance")


REVIEW_TAGS = (("booth", "展台", "booth", "a photo of a trade show booth"),
               ("banner", "横幅", "banner", "a photo of a banner with text"))


def narrow_vocabulary(library, encoder, tags=REVIEW_TAGS):
    """Leave only a few user tags with a very low threshold, then suggest them.

    The tiny test model has no semantics: its probabilities never reach the default
    threshold, so with the full vocabulary nothing would be suggested. Retiring the other
    tags and lowering the threshold (both things a user can do) gives every photo a
    suggestion to review — the mechanics under test, not their meaning.
    """
    from indexer.tagging import TagService

    service = TagService(library, lambda: encoder)
    for info in service.list_tags():
        service.retire_tag(info.tag.key)
    for key, zh, en, prompt in tags:
        service.add_tag(key, zh, en, [prompt], threshold=0.01, refresh=False)
    service.refresh()
    return service
