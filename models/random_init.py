"""A preset's real architecture with random weights, built offline — for benchmarks only.

Speed depends on the architecture, not on the weights, so the benchmarks measure the
default and English presets without downloading anything. Their embeddings have **no
meaning**: the encoder says so (``is_test``) and its ``model_id`` ends in ``@random-weights``,
so a library can never mix them with real vectors.

The multilingual preset's text tower is XLM-RoBERTa base. Its configuration is rebuilt here
from transformers' ``XLMRobertaConfig`` with xlm-roberta-base's published sizes; its
sentencepiece tokenizer is a download we do not have, so :class:`StandInTokenizer` turns
text into random-looking token ids of a realistic count instead (one per word piece or CJK
character, between <s> and </s>, padded to 77). The text tower then does exactly the work
it would do for a real query of that length.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from models.encoder import (
    ClipEncoder,
    _assemble_encoder,
    _build_model,
    _build_tokenizer,
    _hf_text_repo,
    _open_clip_config,
)
from models.presets import get_preset

if TYPE_CHECKING:
    import torch

# xlm-roberta-base's config.json values that differ from XLMRobertaConfig's defaults.
XLM_ROBERTA_BASE = {
    "vocab_size": 250_002,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "bos_token_id": 0,
    "pad_token_id": 1,
    "eos_token_id": 2,
}
_PIECES = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


class StandInTokenizer:
    """Deterministic stand-in for a sentencepiece tokenizer we cannot download.

    Same output shape and special tokens as open_clip's ``HFTokenizer`` for XLM-R
    (``<s>`` … ``</s>`` then padding to the context length); the ids in between come from a
    hash of each piece, so equal texts give equal ids and lengths track the text.
    """

    def __init__(self, *, vocab_size: int, bos: int, eos: int, pad: int,
                 context_length: int = 77) -> None:
        self.vocab_size = vocab_size
        self.bos, self.eos, self.pad = bos, eos, pad
        self.context_length = context_length

    def ids(self, text: str) -> list[int]:
        """Token ids of one text, special tokens included, cut to the context length."""
        first_free = max(self.bos, self.eos, self.pad) + 1
        body = [
            first_free + int.from_bytes(hashlib.blake2b(piece.encode(), digest_size=4).digest(),
                                        "little") % (self.vocab_size - first_free)
            for piece in _PIECES.findall(text)
        ]
        return [self.bos, *body[: self.context_length - 2], self.eos]

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        import torch

        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), self.context_length), self.pad, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = self.ids(text)
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out


def random_weight_encoder(
    preset: str, *, work_dir: Path, precision: str = "fp32", device: str = "cpu"
) -> tuple[ClipEncoder, str]:
    """The preset's architecture and preprocessing with seeded random weights, offline.

    Returns the encoder and a one-line note on what stands in for the real thing (shown in
    benchmark output). ``work_dir`` receives the HF text config when the preset needs one,
    and the cached ONNX file of the int8 image tower.
    """
    spec = get_preset(preset)
    text_repo = _hf_text_repo(spec.arch) if spec.pretrained is not None else None
    text_dir = None
    note = f"{spec.arch}, random weights (no semantics)"
    if text_repo is not None:
        text_dir = _write_text_config(text_repo, Path(work_dir))
        note += f"; {text_repo} config rebuilt locally, token ids from a stand-in tokenizer"
    model, preprocess = _build_model(spec, None, text_dir)
    if text_dir is None:
        tokenizer = _build_tokenizer(spec, None)
    else:
        config = model.text.config
        tokenizer = StandInTokenizer(
            vocab_size=config.vocab_size, bos=config.bos_token_id, eos=config.eos_token_id,
            pad=config.pad_token_id,
            context_length=_open_clip_config(spec.arch)["text_cfg"].get("context_length", 77),
        )
    encoder = _assemble_encoder(
        model, preprocess, tokenizer, dataclasses.replace(spec, is_test=True),
        f"{spec.name}:{spec.arch}@random-weights",
        precision=precision, device=device, cache_dir=Path(work_dir),
    )
    return encoder, note


def _write_text_config(repo: str, work_dir: Path) -> Path:
    from transformers import XLMRobertaConfig

    if repo != "xlm-roberta-base":
        raise ValueError(f"no local configuration for the text tower {repo!r}")
    folder = work_dir / f"{repo}-config"
    XLMRobertaConfig(**XLM_ROBERTA_BASE).save_pretrained(folder)
    return folder
