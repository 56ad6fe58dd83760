"""The encoder's speed paths give the answers of the slow ones: numpy preprocessing, text
towers stopped at the last real token, and the bf16/int8 precisions.

All on the tiny random model (and a tiny XLM-R stand-in): they check mechanics and numerics,
not meaning — these models have no semantics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models import ClipEncoder, load_encoder
from models import encoder as encoder_module
from models.random_init import StandInTokenizer, random_weight_encoder

from .conftest import synthetic_image

TEXTS = ["张三的会议照片", "a photo of a cat", "", "product demo at the booth, 2024 展台"]


@pytest.fixture(scope="module")
def tiny_fp32(tmp_path_factory) -> ClipEncoder:
    return load_encoder("tiny-test", cache_dir=tmp_path_factory.mktemp("models"))


def _full_length(encoder: ClipEncoder, texts: list[str]) -> np.ndarray:
    """The reference: every text padded to the full context and run through all of it."""
    tokens = encoder._tokenizer(texts)
    with torch.inference_mode():
        features = encoder_module._encode_tokens(encoder._model, tokens)
    return encoder_module._normalised_numpy(features)


def test_numpy_preprocessing_equals_open_clip_transform(tiny_fp32: ClipEncoder):
    import open_clip

    original = open_clip.image_transform(224, is_train=False)  # as ViT-B-32 uses
    fast = encoder_module._without_torch_ops(original)
    assert fast is not original
    for seed, size in enumerate([(500, 375), (375, 500), (224, 224), (97, 301)]):
        image = synthetic_image(seed, size)
        assert torch.equal(fast(image), original(image))
    grey = synthetic_image(9, (300, 200)).convert("L")
    assert torch.equal(fast(grey), original(grey))


def test_unknown_transform_is_left_alone():
    def transform(image):
        return image

    assert encoder_module._without_torch_ops(transform) is transform


def test_text_early_stop_gives_the_full_context_embeddings(tiny_fp32: ClipEncoder):
    tokens = tiny_fp32._tokenizer(TEXTS)
    trimmed = encoder_module._trim_padding(tiny_fp32._model, tokens)
    assert trimmed.shape[1] < tokens.shape[1]  # the pass really is shorter
    np.testing.assert_allclose(
        tiny_fp32.encode_texts(TEXTS), _full_length(tiny_fp32, TEXTS), atol=1e-5
    )
    # One text alone stops at its own end-of-text token, with the same result.
    for text in TEXTS:
        np.testing.assert_allclose(
            tiny_fp32.encode_texts([text + " "])[0], _full_length(tiny_fp32, [text])[0],
            atol=1e-5,
        )


def test_text_early_stop_on_a_hugging_face_tower(tiny_xlmr_encoder: ClipEncoder):
    encoder = tiny_xlmr_encoder
    texts = ["一只猫", "a cat", "a dog 一只 狗 cat cat"]
    tokens = encoder._tokenizer(texts)
    assert encoder_module._trim_padding(encoder._model, tokens).shape[1] < tokens.shape[1]
    np.testing.assert_allclose(encoder.encode_texts(texts), _full_length(encoder, texts),
                               atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precisions_stay_close_to_fp32(tiny_fp32: ClipEncoder, tmp_path: Path,
                                               precision: str):
    reduced = load_encoder("tiny-test", cache_dir=tmp_path, precision=precision)
    assert reduced.precision == precision and reduced.model_id == tiny_fp32.model_id
    images = [synthetic_image(seed, (160 + seed, 120)) for seed in range(8)]
    for reference, vectors in [
        (tiny_fp32.encode_images(images), reduced.encode_images(images)),
        (tiny_fp32.encode_texts(TEXTS), reduced.encode_texts(TEXTS)),
    ]:
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        cosines = np.sum(reference * vectors, axis=1)
        assert np.all(cosines >= 0.99), cosines


def test_stand_in_tokenizer_shapes_like_xlm_roberta():
    tokenizer = StandInTokenizer(vocab_size=1000, bos=0, eos=2, pad=1, context_length=16)
    tokens = tokenizer(["展台产品演示", "product demo", "x " * 40])
    assert tokens.shape == (3, 16) and tokens.dtype == torch.long
    assert tokens[0, :8].tolist()[0] == 0 and tokens[0, 7] == 2 and tokens[0, 8] == 1
    assert tokens[1, 3] == 2 and torch.all(tokens[1, 4:] == 1)
    assert tokens[2, -1] == 2 and 1 not in tokens[2].tolist()  # cut, still closed
    assert torch.equal(tokenizer("猫"), tokenizer(["猫"]))
    assert int(tokens.max()) < 1000


def test_random_weight_encoder_is_marked_meaningless(tmp_path: Path):
    encoder, note = random_weight_encoder("tiny-test", work_dir=tmp_path)
    assert encoder.is_test and encoder.model_id.endswith("@random-weights")
    assert "no semantics" in note
    assert encoder.encode_texts(["猫"]).shape == (1, encoder.dim)


def test_default_precision_follows_native_bf16_support():
    from models import default_precision

    assert default_precision("flags : fpu sse avx2 avx512f avx512_bf16 avx512_vnni") == "bf16"
    assert default_precision("flags : fpu sse avx2 amx_bf16 amx_tile") == "bf16"
    assert default_precision("flags : fpu sse avx2 avx512f avx512_vnni") == "fp32"
    assert default_precision("") == "fp32"
