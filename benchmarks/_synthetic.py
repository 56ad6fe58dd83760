"""Realistic inputs for the benchmarks, generated in the run: camera-sized JPEGs made from
the real test photos, and embedding-like vectors with the structure of a photo library.

Kept apart from the benchmark scripts so each measures and prints, and nothing here times
anything.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TESTDATA = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "photos"
CAMERA_SIZE = (4000, 3000)

# --- photos ---------------------------------------------------------------------------


def source_photos(testdata: Path = TESTDATA) -> list[Image.Image]:
    """The real photos that decode (the HEIC, the TIFF, the camera JPEGs), upright RGB."""
    from indexer.decode import decode_photo
    from indexer.errors import DecodeError

    images = []
    for path in sorted(testdata.rglob("*")):
        if not path.is_file() or "invalid" in path.parts or path.name == "corrupted.jpg":
            continue
        try:
            images.append(decode_photo(path, min_side=0).image)
        except DecodeError:
            continue
    if not images:
        raise SystemExit(f"no decodable photos under {testdata}")
    return images


def camera_jpeg(source: Image.Image, seed: int, size: tuple[int, int] = CAMERA_SIZE,
                quality: int = 90) -> bytes:
    """A 12-megapixel JPEG with real content and camera-like texture.

    The source is cropped and flipped by seed, upscaled to ``size`` and given fine detail
    (sensor-like grain plus a little per-channel noise), because an upscaled small photo
    alone is unnaturally smooth and would compress, and decode, far faster than a real
    camera file. Quality 90 as phones and cameras save. Returns the encoded bytes.
    """
    rng = np.random.default_rng(seed)
    w, h = source.size
    crop = rng.uniform(0.0, 0.15, 4)
    box = (int(crop[0] * w), int(crop[1] * h), w - int(crop[2] * w), h - int(crop[3] * h))
    image = source.crop(box)
    if seed % 2:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if (image.width < image.height) != (size[0] < size[1]):
        image = image.transpose(Image.Transpose.ROTATE_90)
    image = image.resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.int16)
    grain = rng.normal(0.0, 5.0, pixels.shape[:2] + (1,))
    chroma = rng.normal(0.0, 2.0, pixels.shape)
    gain = rng.uniform(0.9, 1.1, 3)
    pixels = np.clip(pixels * gain + grain + chroma, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def write_camera_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` distinct 12 MP JPEGs in ``folder`` (reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = source_photos()
    paths = []
    for i in range(count):
        path = folder / f"IMG_{seed:02d}{i:05d}.jpg"
        if not path.exists():
            path.write_bytes(camera_jpeg(sources[i % len(sources)], seed * 100_000 + i))
        paths.append(path)
    return paths


# --- vectors --------------------------------------------------------------------------

# Shares of a vector's squared length: the direction every photo embedding shares (CLIP
# image embeddings sit in a narrow cone), its topic, its scene (a burst of shots of one
# moment) and its own detail. Chosen so a random pair has cosine ~0.50, photos of one
# topic ~0.65, shots of one scene ~0.85, as real CLIP image embeddings of a photo library.
_CONE, _TOPIC, _SCENE, _OWN = 0.50, 0.15, 0.20, 0.15
# A text query's alignment with the cone, a topic and a scene: the matching photos score
# ~0.32 and unrelated ones ~0.18, like CLIP text-to-image cosines, margins included.
_TEXT_CONE, _TEXT_TOPIC, _TEXT_SCENE = 0.25, 0.15, 0.18
SCENE_SIZE = 30
TOPICS = 200


@dataclass(frozen=True)
class VectorWorld:
    """The hidden structure behind a set of synthetic embeddings."""

    dim: int
    cone: np.ndarray
    topics: np.ndarray
    scenes: np.ndarray
    scene_topic: np.ndarray

    @classmethod
    def create(cls, n: int, dim: int = 512, seed: int = 0) -> VectorWorld:
        rng = np.random.default_rng(seed)
        n_scenes = max(1, n // SCENE_SIZE)
        return cls(
            dim=dim,
            cone=_unit(rng.standard_normal((1, dim), dtype=np.float32))[0],
            topics=_unit(rng.standard_normal((TOPICS, dim), dtype=np.float32)),
            scenes=_unit(rng.standard_normal((n_scenes, dim), dtype=np.float32)),
            scene_topic=rng.integers(0, TOPICS, n_scenes),
        )

    def photos(self, n: int, seed: int = 1, chunk: int = 100_000) -> Iterator[np.ndarray]:
        """``n`` unit vectors in chunks (a million at once would need 4 GB of scratch)."""
        rng = np.random.default_rng(seed)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            scene = rng.integers(0, len(self.scenes), m)
            yield self._mix(rng, m, scene, _CONE, _TOPIC, _SCENE)

    def text_queries(self, m: int, seed: int = 2) -> np.ndarray:
        rng = np.random.default_rng(seed)
        scene = rng.integers(0, len(self.scenes), m)
        return self._mix(rng, m, scene, _TEXT_CONE**2, _TEXT_TOPIC**2, _TEXT_SCENE**2)

    def _mix(self, rng, m, scene, cone, topic, own_scene) -> np.ndarray:
        own = max(0.0, 1.0 - cone - topic - own_scene)
        noise = _unit(rng.standard_normal((m, self.dim), dtype=np.float32))
        x = (
            np.sqrt(cone) * self.cone
            + np.sqrt(topic) * self.topics[self.scene_topic[scene]]
            + np.sqrt(own_scene) * self.scenes[scene]
            + np.sqrt(own) * noise
        )
        return _unit(x.astype(np.float32))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_vectors(n: int, dim: int = 512, seed: int = 0) -> tuple[np.ndarray, VectorWorld]:
    world = VectorWorld.create(n, dim, seed)
    return np.vstack(list(world.photos(n, seed + 1))), world
