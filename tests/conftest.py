"""Fixtures shared by every test: the real test photos, the tiny test model, and a fresh
library in a temporary folder. Nothing here downloads or reads the user's environment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "photos"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """No test may reach the network or the user's real library."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("KEZHAO_LIBRARY", str(tmp_path_factory.mktemp("default-library")))
    monkeypatch.delenv("KEZHAO_MODEL", raising=False)


@pytest.fixture(scope="session")
def testdata() -> Path:
    assert TESTDATA.is_dir(), f"test photos expected at {TESTDATA}"
    return TESTDATA


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory):
    from models import load_encoder

    return load_encoder("tiny-test", cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture
def library(tmp_path: Path):
    from indexer.library import open_library

    lib = open_library(tmp_path / "library")
    yield lib
    lib.close()


class CountingEncoder:
    """Wraps an encoder and counts how many photos it was asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.image_size = inner.image_size
        self.images_encoded = 0

    def preprocess(self, image):
        return self.inner.preprocess(image)

    def encode_preprocessed(self, batch):
        self.images_encoded += len(batch)
        return self.inner.encode_preprocessed(batch)

    def encode_images(self, images):
        self.images_encoded += len(images)
        return self.inner.encode_images(images)

    def encode_texts(self, texts):
        return self.inner.encode_texts(texts)


@pytest.fixture
def counting_encoder(tiny_encoder) -> CountingEncoder:
    return CountingEncoder(tiny_encoder)


def textured_image(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct, photo-like image: smooth colour gradients plus noise, by seed."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.005, 0.05, 2).tolist() + [rng.uniform(0, 6.3)]
        channels.append(127 + 100 * np.sin(fx * x + fy * y + phase))
    img = np.stack(channels, axis=-1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def write_photo(path: Path, seed: int, size: tuple[int, int] = (320, 240), **save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    textured_image(seed, size).save(path, **save)
    return path


def copy_tree(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    return dest
