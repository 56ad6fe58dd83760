"""Fixtures for the model tests: synthetic images, a network that cannot be reached, and a
library ``models/`` folder laid out as the Hugging Face Hub cache would leave it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def synthetic_image(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A distinct RGB image per seed: coloured gradients plus noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    freq = rng.uniform(0.02, 0.2, (3, 2))
    phase = rng.uniform(0, 6.3, 3)
    waves = zip(freq, phase, strict=True)
    channels = [127 + 100 * np.sin(fx * x + fy * y + p) for (fx, fy), p in waves]
    pixels = np.stack(channels, axis=-1) + rng.normal(0, 10, (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture
def images() -> list[Image.Image]:
    return [
        synthetic_image(seed, size) for seed, size in enumerate([(96, 80), (64, 64), (50, 120)])
    ]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to resolve or connect fail at once, so a stray download is a test
    failure rather than a slow retry loop."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access is disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def hub_file() -> Callable[[Path, str, str, bytes], Path]:
    """Write one file into a hub-style cache (refs/main + snapshots/<commit>/)."""

    def write(cache_dir: Path, repo: str, filename: str, content: bytes = b"stub") -> Path:
        repo_dir = cache_dir / ("models--" + repo.replace("/", "--"))
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(FAKE_COMMIT)
        path = repo_dir / "snapshots" / FAKE_COMMIT / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    return write


@pytest.fixture
def tiny_xlmr_dir(tmp_path: Path) -> Path:
    """A stand-in for the xlm-roberta-base config + tokenizer: same classes, tiny sizes."""
    transformers = pytest.importorskip("transformers")
    XLMRobertaConfig, XLMRobertaTokenizer = (
        transformers.XLMRobertaConfig,
        transformers.XLMRobertaTokenizer,
    )

    pieces = ["▁", "a", "cat", "▁a", "▁cat", "▁dog", "猫", "一", "只", "▁一", "狗"]
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(piece, -1.0) for piece in pieces] + [("<mask>", 0.0)]
    folder = tmp_path / "xlmr"
    XLMRobertaTokenizer(vocab=vocab).save_pretrained(folder)
    XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=80,
    ).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_xlmr_encoder(tiny_xlmr_dir: Path):
    """The multilingual preset's architecture around the tiny stand-in xlm-roberta, built
    from the local folder only (real weights cannot be fetched in tests)."""
    from models import encoder as encoder_module
    from models.encoder import ClipEncoder
    from models.presets import get_preset

    preset = get_preset("multilingual")
    model, preprocess = encoder_module._build_model(preset, None, tiny_xlmr_dir)
    return ClipEncoder(
        model=encoder_module._finish_model(model, "fp32", "cpu"),
        preprocess=preprocess,
        tokenizer=encoder_module._build_tokenizer(preset, tiny_xlmr_dir),
        preset=preset,
        model_id="test",
        image_size=224,
        dim=512,
        precision="fp32",
        device="cpu",
    )
