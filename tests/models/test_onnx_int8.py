"""int8 precision: the image tower exported to ONNX, quantised, cached and run by ONNX Runtime.

All on the tiny test model with random weights: it checks mechanics and numerics (int8
vectors stay close to fp32, the cache is reused and repaired, errors are one clear line),
not meaning — this model has no semantics. The cosine bound below is what the tiny model
honestly meets on the real test photos (measured ~0.9999); the real ViT-B/32 tower measured
a minimum of ~0.9998 on 48 real-content photos (benchmarks/indexing.py).
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from models import ClipEncoder, ModelError, default_precision, load_encoder, onnx_int8
from models.encoder import torch_threads

MIN_COSINE = 0.999
# Photos in ../shared/testdata that decode with Pillow alone (camera JPEGs, rotated scenes).
PHOTO_GLOB = ("jpg/*.jpg", "jpg/orientation/*.jpg")


def real_photos(testdata: Path) -> list[Image.Image]:
    images = []
    for pattern in PHOTO_GLOB:
        for path in sorted(testdata.glob(pattern)):
            if path.name == "corrupted.jpg":
                continue
            with Image.open(path) as image:
                image.draft("RGB", (448, 448))
                images.append(ImageOps.exif_transpose(image).convert("RGB"))
    assert len(images) >= 16
    return images


@pytest.fixture(scope="module")
def photos(testdata: Path) -> list[Image.Image]:
    return real_photos(testdata)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory) -> ClipEncoder:
    return load_encoder("tiny-test", cache_dir=tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("int8-models")


@pytest.fixture(scope="module")
def int8(models_dir: Path) -> ClipEncoder:
    return load_encoder("tiny-test", cache_dir=models_dir, precision="int8")


def cached_files(models_dir: Path) -> list[Path]:
    return sorted((models_dir / onnx_int8.CACHE_FOLDER).glob("image-*.onnx"))


def test_int8_vectors_stay_close_to_fp32_on_real_photos(fp32, int8, photos):
    assert int8.precision == "int8" and int8.model_id == fp32.model_id
    reference, vectors = fp32.encode_images(photos), int8.encode_images(photos)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(reference * vectors, axis=1)
    assert cosines.min() >= MIN_COSINE, cosines


def test_images_run_in_onnx_runtime_and_texts_in_torch(fp32, int8):
    assert isinstance(int8._image_tower, onnx_int8.Int8ImageTower)
    text_dtype = torch.bfloat16 if default_precision() == "bf16" else torch.float32
    assert int8._model.positional_embedding.dtype == text_dtype
    texts = ["张三的会议照片", "a photo of a cat"]
    cosines = np.sum(fp32.encode_texts(texts) * int8.encode_texts(texts), axis=1)
    assert cosines.min() >= 0.99


def test_a_photo_barely_depends_on_its_batch_mates(int8, photos):
    """Activations are quantised with one scale per call, so a photo's vector moves a
    little with the other photos of its batch; the move stays inside the int8 error."""
    batch = torch.stack([int8.preprocess(image) for image in photos])
    together = int8.encode_preprocessed(batch)
    alone = np.concatenate([int8.encode_preprocessed(batch[i : i + 1]) for i in range(4)])
    assert np.sum(alone * together[:4], axis=1).min() >= MIN_COSINE


def test_thread_count_follows_torch_and_does_not_change_results(int8, photos):
    batch = torch.stack([int8.preprocess(image) for image in photos[:4]])
    with torch_threads(1):
        one = int8.encode_preprocessed(batch)
    with torch_threads(2):
        two = int8.encode_preprocessed(batch)
    assert {1, 2} <= set(int8._image_tower._sessions)
    np.testing.assert_allclose(one, two, atol=1e-4)


def test_second_load_reuses_the_cached_file(int8, models_dir, monkeypatch, photos):
    [path] = cached_files(models_dir)
    before = path.stat()
    monkeypatch.setattr(onnx_int8, "build_int8_file", _must_not_build)
    again = load_encoder("tiny-test", cache_dir=models_dir, precision="int8")
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    np.testing.assert_array_equal(again.encode_images(photos[:3]), int8.encode_images(photos[:3]))


def _must_not_build(*args, **kwargs):
    raise AssertionError("the cached int8 file was exported again")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "no digest"])
def test_damaged_cache_file_is_rebuilt_with_one_log_line(
    int8, models_dir, tmp_path, photos, caplog, damage
):
    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    [path] = cached_files(folder)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"not an onnx file")
    else:
        path.with_suffix(".sha256").unlink()
    with caplog.at_level(logging.WARNING, logger="models.onnx_int8"):
        rebuilt = load_encoder("tiny-test", cache_dir=folder, precision="int8")
    warnings = [r for r in caplog.records if r.name == "models.onnx_int8"]
    assert len(warnings) == 1 and "rebuilding" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    assert cached_files(folder) == [path]
    assert onnx_int8._check_cached(path) is None
    np.testing.assert_allclose(
        rebuilt.encode_images(photos[:3]), int8.encode_images(photos[:3]), atol=1e-5
    )


def test_other_weights_get_their_own_file(int8, models_dir, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    visual = copy.deepcopy(int8._model.visual).float()
    with torch.no_grad():
        visual.proj.mul_(1.5)
    onnx_int8.load_image_tower(visual, cache_dir=folder, model_id=int8.model_id)
    assert len(cached_files(folder)) == 2


def test_a_killed_build_leaves_no_folder_behind_for_long(int8, models_dir, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(models_dir, folder)
    cache = folder / onnx_int8.CACHE_FOLDER
    abandoned, recent = cache / ".building-abandoned", cache / ".building-recent"
    for leftover in (abandoned, recent):
        leftover.mkdir()
        (leftover / "fp32.onnx").write_bytes(b"half an export")
    old = abandoned.stat().st_mtime - 2 * 3600
    os.utime(abandoned, (old, old))
    [path] = cached_files(folder)
    path.unlink()  # forces a build, which tidies up first
    load_encoder("tiny-test", cache_dir=folder, precision="int8")
    assert not abandoned.exists()
    assert recent.exists()  # may belong to a build running in another process
    assert cached_files(folder) == [path]


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_missing_fast_extra_is_one_clear_model_error(tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ModelError) as error:
        load_encoder("tiny-test", cache_dir=tmp_path, precision="int8")
    assert str(error.value) == "int8 needs the 'fast' extra: pip install 'kezhao[fast]'"


def test_int8_is_refused_off_the_cpu(tmp_path):
    with pytest.raises(ModelError, match="CPU only"):
        load_encoder("tiny-test", cache_dir=tmp_path, precision="int8", device="cuda")


def test_export_form_of_the_tower_computes_the_same(int8, photos):
    """The patch MatMul and the fused-attention function stand in for the convolution and
    nn.MultiheadAttention in the exported graph; in torch they must give the same result."""
    visual = copy.deepcopy(int8._model.visual).float()
    prepared = onnx_int8.prepare_for_export(copy.deepcopy(visual))
    assert "forward" in vars(prepared.conv1)
    assert all("attention" in vars(block) for block in prepared.transformer.resblocks)
    batch = torch.stack([int8.preprocess(image) for image in photos[:4]])
    with torch.no_grad():
        torch.testing.assert_close(prepared(batch), visual(batch), atol=1e-5, rtol=1e-4)


def test_index_run_in_int8_is_searchable_with_the_fp32_model(fp32, int8, library, testdata,
                                                               tmp_path):
    from indexer.library import open_library
    from indexer.pipeline import index_paths
    from search.query import SearchService

    root = tmp_path / "photos" / "张三"
    root.mkdir(parents=True)
    for path in sorted((testdata / "jpg").glob("*.jpg")):
        if path.name != "corrupted.jpg":
            shutil.copy(path, root / path.name)
    summary = index_paths(library, int8, [root.parent])
    assert summary.encoded == len(list(root.iterdir())) and summary.failed == 0
    assert library.catalog.model_id() == fp32.model_id

    with open_library(tmp_path / "fp32-library") as reference:
        index_paths(reference, fp32, [root.parent])
        expected = {Path(p.path).name: reference.catalog.embedding(p.id)
                    for p in _photos(reference)}

    service = SearchService(library, lambda: fp32)  # same model id: no mismatch
    query = "产品展示 product demo"
    hits = service.by_text(query, k=50)
    assert len(hits) == summary.encoded
    text = fp32.encode_texts([query])[0]
    # |t . (a - b)| <= |a - b| = sqrt(2 - 2 cos(a, b)) for unit vectors.
    tolerance = float(np.sqrt(2 * (1 - MIN_COSINE)))
    for hit in hits:
        stored = library.catalog.embedding(hit.photo.id)
        fp32_vector = expected[Path(hit.photo.path).name]
        assert float(np.dot(stored, fp32_vector)) >= MIN_COSINE
        assert abs(hit.score - float(np.dot(text, fp32_vector))) <= tolerance


def _photos(library):
    return library.catalog.photos_by_ids(
        [int(i) for ids, _ in library.catalog.iter_embeddings() for i in ids]
    ).values()
