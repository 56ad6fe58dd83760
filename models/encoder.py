"""Load a CLIP model from a preset or a local checkpoint and turn images and texts into vectors.

Everything neural that the indexer and search need goes through :class:`ClipEncoder`, which
returns L2-normalised float32 numpy arrays so nothing downstream touches torch.

Weights for real presets live in the library's ``models/`` folder, laid out as a Hugging Face
Hub cache. We resolve files ourselves (cache first, then the hub) rather than letting open_clip
download them, for three reasons: a library copied to an offline machine must load without a
single network request; ``allow_download=False`` needs a real "local files only" switch; and
open_clip's HF text tower reads its config from the default HF cache, not from ``cache_dir``, so
the multilingual preset's text config and tokenizer are fetched here and handed to open_clip as
a local folder.

torch, open_clip and huggingface_hub are imported inside functions so the CLI starts fast.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.errors import ModelError, ModelUnavailableError
from models.presets import DEFAULT_PRESET, ModelPreset, get_preset

if TYPE_CHECKING:
    import torch
    from PIL import Image

# fp32: reference. bf16: weights and activations in bfloat16 (not autocast, which measured
# slower on CPU). int8: the image tower exported to ONNX and dynamically quantised (int8
# weights, activations quantised per call) run by ONNX Runtime (models/onnx_int8.py); the
# text tower as the CPU's default precision. See docs/performance.md for what each trades.
PRECISIONS = ("fp32", "bf16", "int8")
TINY_TEST_SEED = 0
TEXT_CACHE_SIZE = 256
_CONFIG_DIR = Path(__file__).parent / "configs"
# open_clip's weight file names on the hub, safetensors preferred (as open_clip does).
_HUB_WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# What an HF text tower needs besides its weights (which are inside the CLIP checkpoint):
# each group is required, its names are alternatives in order of preference.
_HF_TEXT_REQUIRED = (("config.json",), ("tokenizer.json", "sentencepiece.bpe.model"))
_HF_TEXT_OPTIONAL = (
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
)


@dataclass(frozen=True)
class _PresetFiles:
    """Local files a real preset needs: CLIP weights and, for HF text towers, a folder
    holding the text model's config and tokenizer."""

    weights: Path | None
    text_dir: Path | None
    paths: tuple[Path, ...]


class ClipEncoder:
    """A loaded CLIP model with its own preprocessing and tokenizer.

    Outputs are float32, L2-normalised numpy arrays of shape ``(n, dim)``, so cosine
    similarity is a dot product. ``model_id`` identifies the weights; the catalog stores it
    so vectors from different models are never mixed. It does not include ``precision``:
    fp32, bf16 and int8 vectors of one model are interchangeable (within cosine ~0.9998).
    """

    def __init__(
        self,
        *,
        model: Any,
        preprocess: Callable[[Image.Image], torch.Tensor],
        tokenizer: Callable[[Sequence[str]], torch.Tensor],
        preset: ModelPreset,
        model_id: str,
        image_size: int,
        dim: int,
        precision: str,
        device: str,
        image_tower: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.model_id = model_id
        self.preset = preset
        self.image_size = image_size
        self.dim = dim
        self.is_test = preset.is_test
        self.precision = precision
        self.device = device
        self._model = model
        self._image_tower = image_tower
        self._preprocess = _without_torch_ops(preprocess)
        self._tokenizer = tokenizer
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ClipEncoder({self.model_id!r}, dim={self.dim}, precision={self.precision!r})"

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Resize the shortest side, centre-crop and normalise one upright RGB image.

        Pure and thread-safe, so decoding workers can prepare batches while the model runs.
        The tensor steps run in numpy: torch's intra-op thread pool, called from several
        decoding threads while the model holds it, made this step 10x slower on 2 cores.
        """
        return self._preprocess(image)

    def encode_preprocessed(self, batch: torch.Tensor) -> np.ndarray:
        """Embed a batch of preprocessed images, shape ``(n, 3, size, size)``."""
        import torch

        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._image_tower is not None:
            return _normalised_rows(self._image_tower(batch.numpy()))
        with torch.inference_mode():
            pixels = batch.to(self.device, dtype=_torch_dtype(self.precision))
            features = self._model.encode_image(pixels)
            return _normalised_numpy(features)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Preprocess and embed upright RGB images."""
        import torch

        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.encode_preprocessed(torch.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; recent ones come from a small per-encoder LRU cache.

        Searches repeat the same few queries (paging, re-filtering), and tag prompts are
        encoded again on every scoring pass, so caching saves most text-tower work.
        """
        texts = list(texts)
        found = self._cached_texts(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            fresh = self._encode_uncached(missing)
            found.update(zip(missing, fresh, strict=True))
            self._remember_texts(missing, fresh)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        import torch

        # One query is a few tokens: too little work to share between cores, and on a busy
        # 2-core machine waiting for a second thread made it ten times slower.
        threads = 1 if len(texts) == 1 else None
        with torch_threads(threads), torch.inference_mode():
            tokens = _trim_padding(self._model, self._tokenizer(texts)).to(self.device)
            return _normalised_numpy(_encode_tokens(self._model, tokens))

    def _cached_texts(self, texts: list[str]) -> dict[str, np.ndarray]:
        with self._text_cache_lock:
            found = {}
            for text in texts:
                if text in self._text_cache:
                    self._text_cache.move_to_end(text)
                    found[text] = self._text_cache[text]
            return found

    def _remember_texts(self, texts: list[str], vectors: np.ndarray) -> None:
        with self._text_cache_lock:
            for text, vector in zip(texts, vectors, strict=True):
                frozen = vector.copy()
                frozen.setflags(write=False)
                self._text_cache[text] = frozen
                self._text_cache.move_to_end(text)
            while len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)


def default_precision(cpu_flags: str | None = None) -> str:
    """bf16 where the CPU computes in bf16 natively (AVX512-BF16 or AMX), else fp32.

    bf16 measured ~1.9x the model throughput of fp32 on such a CPU with embeddings within
    cosine 0.9999 of fp32; without native support torch emulates it, slower than fp32.
    ``cpu_flags`` is /proc/cpuinfo's text (read when None; absent off Linux: fp32).
    """
    if cpu_flags is None:
        try:
            cpu_flags = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return "fp32"
    flags = set(cpu_flags.split())
    return "bf16" if flags & {"avx512_bf16", "amx_bf16"} else "fp32"


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with torch limited to ``n`` threads (None: unchanged), then restore.

    Single text queries run on one thread; the indexer can cap the model's threads so
    decoding workers get cores (``index_paths(model_threads=...)``).
    """
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_encoder(
    preset: str = DEFAULT_PRESET,
    *,
    cache_dir: Path,
    checkpoint: Path | None = None,
    precision: str = "fp32",
    allow_download: bool = True,
    device: str = "cpu",
) -> ClipEncoder:
    """Load a preset's model, from the library's ``models/`` folder or the hub.

    ``checkpoint`` replaces the preset's weights with a local file (same architecture).
    Missing files that cannot be downloaded raise :class:`ModelUnavailableError`; a bad
    checkpoint raises :class:`ModelError`. ``HF_HUB_OFFLINE=1`` in the environment is
    honoured at call time, like ``allow_download=False``.
    """
    spec = get_preset(preset)
    if precision not in PRECISIONS:
        raise ModelError(f"Unknown precision {precision!r}; use one of: {', '.join(PRECISIONS)}.")
    blocked = _download_blocked(allow_download, os.environ)
    cache_dir = Path(cache_dir)
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise ModelError(f"Checkpoint file not found: {checkpoint}")
    files = _resolve_files(spec, cache_dir, blocked=blocked, need_weights=checkpoint is None)
    weights = checkpoint if checkpoint is not None else files.weights
    try:
        model, preprocess = _build_model(spec, weights, files.text_dir)
        tokenizer = _build_tokenizer(spec, files.text_dir)
    except ModelError as error:
        if checkpoint is not None or spec.pretrained is None:
            raise
        raise ModelError(
            f"{error} The files in {cache_dir} may be damaged: delete them and run "
            f"`kezhao models download {spec.name}`."
        ) from error
    return _assemble_encoder(
        model, preprocess, tokenizer, spec, _model_id(spec, checkpoint),
        precision=precision, device=device, cache_dir=cache_dir,
    )


def _assemble_encoder(
    model: Any, preprocess: Any, tokenizer: Any, spec: ModelPreset, model_id: str, *,
    precision: str, device: str, cache_dir: Path,
) -> ClipEncoder:
    """An encoder from a freshly built fp32 ``model``: the int8 image tower is taken from
    it before its weights are converted for ``precision`` (shared with random_init)."""
    image_tower = _image_tower(model, precision, device, cache_dir, model_id)
    model = _finish_model(model, precision, device)
    return ClipEncoder(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        preset=spec,
        model_id=model_id,
        image_size=_image_size(model),
        dim=int(_open_clip_config(spec.arch)["embed_dim"]),
        precision=precision,
        device=device,
        image_tower=image_tower,
    )


def download_preset(preset: str, cache_dir: Path) -> list[Path]:
    """Fetch every file a preset needs into ``cache_dir``, with the hub's progress bars.

    Copying the resulting folder to an offline machine's library is enough for
    :func:`load_encoder` to work there. Files already present are not downloaded again.
    """
    spec = get_preset(preset)
    if spec.pretrained is None:
        return []
    files = _resolve_files(spec, Path(cache_dir), blocked=None, need_weights=True)
    return list(files.paths)


def cached_files(preset: str, cache_dir: Path) -> list[Path]:
    """The preset's files already in ``cache_dir``, found without any network request.

    Raises :class:`ModelUnavailableError` when any is missing, so ``kezhao models list`` can
    tell which presets are ready for offline use.
    """
    spec = get_preset(preset)
    if spec.pretrained is None:
        return []
    blocked = "only files already present were looked for"
    files = _resolve_files(spec, Path(cache_dir), blocked=blocked, need_weights=True)
    return list(files.paths)


def save_checkpoint(encoder: ClipEncoder, path: Path) -> Path:
    """Write the encoder's weights (float32, CPU) where ``checkpoint=`` can load them."""
    import torch

    state = {
        key: value.detach().to("cpu", torch.float32) if value.is_floating_point() else value
        for key, value in encoder._model.state_dict().items()
    }
    path = Path(path)
    torch.save(state, path)
    return path


def model_id_for(preset: str, checkpoint: Path | None = None) -> str:
    """The ``model_id`` an encoder loaded with these arguments will have, without loading it.

    Lets the indexer decide whether stored vectors are current before paying for a load.
    """
    return _model_id(get_preset(preset), Path(checkpoint) if checkpoint else None)


# --- identifiers ------------------------------------------------------------------------


def _model_id(spec: ModelPreset, checkpoint: Path | None) -> str:
    if checkpoint is not None:
        return f"{spec.arch}@checkpoint:{_file_sha256(checkpoint)[:16]}"
    if spec.pretrained is None:
        return f"{spec.name}:{spec.arch}@seed{TINY_TEST_SEED}"
    return f"{spec.name}:{spec.arch}/{spec.pretrained}"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_blocked(allow_download: bool, environ: Mapping[str, str]) -> str | None:
    """Why downloading is off, or None when it is allowed.

    huggingface_hub reads HF_HUB_OFFLINE once, at import; we read it on every load so a
    setting made later (a test, a launcher) still prevents slow, retrying network attempts.
    """
    if not allow_download:
        return "downloading was not allowed"
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if environ.get(name, "").strip().lower() in {"1", "on", "yes", "true"}:
            return f"{name} is set"
    return None


# --- locating files ---------------------------------------------------------------------


def _resolve_files(
    spec: ModelPreset, cache_dir: Path, *, blocked: str | None, need_weights: bool
) -> _PresetFiles:
    """Find (or, unless ``blocked`` says why not, download) a preset's files in ``cache_dir``."""
    if spec.pretrained is None:
        return _PresetFiles(weights=None, text_dir=None, paths=())
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        paths: list[Path] = []
        weights = None
        if need_weights:
            repo, names = _hub_weights_location(spec)
            weights = _fetch_first(repo, names, cache_dir, blocked)
            paths.append(weights)
        text_dir = None
        text_repo = _hf_text_repo(spec.arch)
        if text_repo is not None:
            text_paths = _fetch_text_files(text_repo, cache_dir, blocked)
            text_dir = text_paths[0].parent
            paths.extend(text_paths)
    except _NotCached as missing:
        raise ModelUnavailableError(spec.name, cache_dir, str(missing)) from None
    except LocalEntryNotFoundError:
        reason = "the Hugging Face Hub could not be reached"
        raise ModelUnavailableError(spec.name, cache_dir, reason) from None
    except (HfHubHTTPError, OSError, ValueError) as error:
        reason = _first_line(error) or type(error).__name__
        raise ModelUnavailableError(spec.name, cache_dir, reason) from None
    return _PresetFiles(weights=weights, text_dir=text_dir, paths=tuple(paths))


class _NotCached(Exception):
    """A file is missing locally and downloading is not allowed."""


def _hub_weights_location(spec: ModelPreset) -> tuple[str, tuple[str, ...]]:
    """Hub repo and candidate file names for a preset's tag, from open_clip's registry."""
    import open_clip

    hub = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained).get("hf_hub", "")
    if not hub:
        raise ModelError(f"open_clip has no hub location for {spec.arch}/{spec.pretrained}.")
    # open_clip's convention: "org/repo/" means the default file names, "org/repo/file" one.
    repo, filename = os.path.split(hub)
    return repo, (filename,) if filename else _HUB_WEIGHT_NAMES


def _hf_text_repo(arch: str) -> str | None:
    text_cfg = _open_clip_config(arch)["text_cfg"]
    model_repo = text_cfg.get("hf_model_name")
    tokenizer_repo = text_cfg.get("hf_tokenizer_name", model_repo)
    if model_repo and tokenizer_repo != model_repo:
        raise ModelError(f"{arch}: a text tower whose tokenizer lives elsewhere is unsupported.")
    return model_repo or None


def _fetch_first(repo: str, names: Sequence[str], cache_dir: Path, blocked: str | None) -> Path:
    """The first of ``names`` in the cache, else the first that downloads."""
    for name in names:
        if (found := _cached(repo, name, cache_dir)) is not None:
            return found
    if blocked is not None:
        raise _NotCached(blocked)
    from huggingface_hub.errors import RemoteEntryNotFoundError

    for name in names[:-1]:
        try:
            return _download(repo, name, cache_dir)
        except RemoteEntryNotFoundError:
            continue
    return _download(repo, names[-1], cache_dir)


def _fetch_text_files(repo: str, cache_dir: Path, blocked: str | None) -> list[Path]:
    """Config and tokenizer of an HF text tower, all in one snapshot folder (required first)."""
    from huggingface_hub.errors import RemoteEntryNotFoundError

    paths = [_fetch_first(repo, names, cache_dir, blocked) for names in _HF_TEXT_REQUIRED]
    for name in _HF_TEXT_OPTIONAL:
        if any(path.name == name for path in paths):
            continue
        found = _cached(repo, name, cache_dir)
        if found is None and blocked is None:
            try:
                found = _download(repo, name, cache_dir)
            except RemoteEntryNotFoundError:
                found = None
        if found is not None:
            paths.append(found)
    return paths


def _cached(repo: str, filename: str, cache_dir: Path) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(
            hf_hub_download(repo, filename, cache_dir=str(cache_dir), local_files_only=True)
        )
    except LocalEntryNotFoundError:
        return None


def _download(repo: str, filename: str, cache_dir: Path) -> Path:
    from huggingface_hub import hf_hub_download

    cache_dir.mkdir(parents=True, exist_ok=True)
    return Path(hf_hub_download(repo, filename, cache_dir=str(cache_dir)))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


# --- building the model -----------------------------------------------------------------


def _open_clip_config(arch: str) -> dict[str, Any]:
    import open_clip

    _register_bundled_configs()
    config = open_clip.get_model_config(arch)
    if config is None:
        raise ModelError(f"open_clip does not know the architecture {arch!r}.")
    return config


def _register_bundled_configs() -> None:
    """Teach open_clip our own architectures (the tiny test model), once per process.

    open_clip keeps its registry in a module global; we add to it only when an architecture
    is missing, so repeated loads do not keep appending search paths.
    """
    import open_clip

    known = set(open_clip.list_models())
    if any(path.stem not in known for path in _CONFIG_DIR.glob("*.json")):
        open_clip.add_model_config(_CONFIG_DIR)


def _build_model(
    spec: ModelPreset, weights: Path | None, text_dir: Path | None
) -> tuple[Any, Callable[[Image.Image], torch.Tensor]]:
    """Create the architecture, load weights and return it with its eval preprocessing."""
    import open_clip

    config = _open_clip_config(spec.arch)
    kwargs: dict[str, Any] = {}
    if text_dir is not None:
        _require_transformers(spec)
        # Point the HF text tower at the local folder; its weights come from the checkpoint.
        kwargs["text_cfg"] = {
            **config["text_cfg"],
            "hf_model_name": str(text_dir),
            "hf_tokenizer_name": str(text_dir),
            "hf_model_pretrained": False,
        }
    if spec.pretrained is not None:
        tag_cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
        kwargs.update(
            image_mean=tag_cfg.get("mean"),
            image_std=tag_cfg.get("std"),
            image_interpolation=tag_cfg.get("interpolation"),
            image_resize_mode=tag_cfg.get("resize_mode"),
        )
    try:
        with _seeded(TINY_TEST_SEED):
            model, _, preprocess = open_clip.create_model_and_transforms(
                spec.arch,
                pretrained=str(weights) if weights is not None else None,
                pretrained_text=False,
                **kwargs,
            )
    except Exception as error:  # torch, pickle, safetensors and open_clip each raise their own
        source = weights if weights is not None else spec.arch
        raise ModelError(
            f"Could not load {spec.arch} weights from {source}: {_first_line(error)}"
        ) from error
    return model, preprocess


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU RNG for a random init without disturbing anyone else's randomness."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _finish_model(model: Any, precision: str, device: str) -> Any:
    """Move to device, convert weights for the precision (no autocast), switch to eval mode.

    For int8 the torch model keeps only the text side's job, in the CPU's default precision;
    its image tower was handed to ONNX Runtime first (:func:`_image_tower`).
    """
    import torch

    model = model.to(device)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if _text_precision(precision) == "bf16":
        model = model.to(torch.bfloat16)
    return model


def _text_precision(precision: str) -> str:
    """The torch precision of the text tower: int8 only changes the image tower."""
    return default_precision() if precision == "int8" else precision


def _image_tower(
    model: Any, precision: str, device: str, cache_dir: Path, model_id: str
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The ONNX Runtime int8 image tower for ``precision="int8"`` (else None), built from
    the still-fp32 ``model.visual`` and cached in ``cache_dir``."""
    if precision != "int8":
        return None
    if device != "cpu":
        raise ModelError("int8 precision runs on the CPU only; use bf16 or fp32 on a GPU.")
    from models.onnx_int8 import load_image_tower

    return load_image_tower(model.visual, cache_dir=cache_dir, model_id=model_id)


def _build_tokenizer(
    spec: ModelPreset, text_dir: Path | None
) -> Callable[[Sequence[str]], torch.Tensor]:
    import open_clip

    if text_dir is None:
        return open_clip.get_tokenizer(spec.arch)
    from open_clip.tokenizer import HFTokenizer

    _require_transformers(spec)
    context_length = _open_clip_config(spec.arch)["text_cfg"].get("context_length", 77)
    try:
        return HFTokenizer(str(text_dir), context_length=context_length)
    except Exception as error:  # transformers raises many types for unreadable files
        raise ModelError(
            f"Could not load the {spec.name!r} tokenizer from {text_dir}: {_first_line(error)}"
        ) from error


def _require_transformers(spec: ModelPreset) -> None:
    """open_clip's HF text towers need ``transformers``, an optional dependency of open_clip."""
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        raise ModelError(
            f"The {spec.name!r} model needs the `transformers` package; install it with "
            f"`pip install transformers`."
        )


def _image_size(model: Any) -> int:
    size = model.visual.preprocess_cfg["size"]
    return int(size if isinstance(size, int) else size[0])


# --- fast paths ------------------------------------------------------------------------


class _NumpyTensorSteps:
    """open_clip's eval preprocessing with its ToTensor + Normalize done in numpy.

    Same operations in the same order and dtype (divide by 255, subtract the mean, divide
    by the std, all float32), so the result equals the original transform's bit for bit.
    """

    def __init__(self, pil_steps: Sequence[Callable], mean: Sequence[float],
                 std: Sequence[float]) -> None:
        self._pil_steps = tuple(pil_steps)
        self._mean = np.asarray(mean, dtype=np.float32)
        self._std = np.asarray(std, dtype=np.float32)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        import torch

        for step in self._pil_steps:
            image = step(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
        pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
        pixels = (pixels - self._mean) / self._std
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def _without_torch_ops(preprocess: Callable) -> Callable:
    """Swap the tensor tail of a torchvision ``Compose`` for numpy; anything unexpected is
    returned unchanged (correct, only slower)."""
    steps = list(getattr(preprocess, "transforms", ()))
    names = [type(step).__name__ for step in steps]
    if len(steps) < 2 or names[-1] != "Normalize" or names[-2] not in {
        "ToTensor", "MaybeToTensor",
    }:
        return preprocess
    normalise = steps[-1]
    mean, std = list(normalise.mean), list(normalise.std)
    if len(mean) != 3 or len(std) != 3:
        return preprocess
    return _NumpyTensorSteps(steps[:-2], mean, std)


def _trim_padding(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Drop the padding columns every text in the batch has, when that cannot change the
    result (early stop at the end-of-text token instead of running all 77 positions).

    Safe for open_clip's own causal text towers pooled at a token (EOT/argmax, EOS, first),
    where no position attends to a later one, and for Hugging Face towers, which mask
    padding out of attention and pooling. A one-phrase query is ~8 tokens, not 77.
    """
    pad = _pad_token_id(model)
    if pad is None or tokens.ndim != 2 or tokens.shape[1] == 0:
        return tokens
    used = (tokens != pad).any(dim=0).nonzero()
    length = int(used.max()) + 1 if used.numel() else 1
    return tokens[:, :length] if length < tokens.shape[1] else tokens


def _pad_token_id(model: Any) -> int | None:
    text = getattr(model, "text", None)
    config = getattr(text, "config", None)
    if config is not None and hasattr(text, "transformer"):  # open_clip's HFTextEncoder
        pad = getattr(config, "pad_token_id", None)
        return int(pad) if pad is not None else None
    causal = getattr(model, "attn_mask", None) is not None
    pooled_at_token = getattr(model, "text_pool_type", None) in {"argmax", "eos", "first"}
    if causal and pooled_at_token and hasattr(model, "token_embedding"):
        return 0  # open_clip's tokenizers pad with 0
    return None


def _encode_tokens(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text`` for token batches of any length up to the context length.

    open_clip's built-in CLIP text tower adds all 77 positional embeddings and the 77x77
    causal mask, so a shorter batch needs them cut to its length; the rest is the same
    computation as open_clip's ``encode_text``.
    """
    import torch
    from open_clip.transformer import text_global_pool

    if not hasattr(model, "token_embedding"):
        return model.encode_text(tokens)
    length = tokens.shape[1]
    # The positional table's dtype is the tower's compute dtype; open_clip asks a Linear's
    # weight instead, which a quantised layer would not have.
    cast_dtype = model.positional_embedding.dtype
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(
        x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
    )
    if model.text_projection is None:
        return x
    if isinstance(model.text_projection, torch.nn.Linear):
        return model.text_projection(x)
    return x @ model.text_projection


def _torch_dtype(precision: str) -> torch.dtype:
    import torch

    return torch.bfloat16 if precision == "bf16" else torch.float32


def _normalised_rows(features: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows of a numpy feature array (the ONNX Runtime path)."""
    features = np.asarray(features, dtype=np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, np.float32(1e-12))


def _normalised_numpy(features: torch.Tensor) -> np.ndarray:
    """float32 and re-normalised after the cast, so bf16 outputs are unit length too."""
    import torch

    features = torch.nn.functional.normalize(features.float(), dim=-1)
    return features.cpu().numpy().astype(np.float32, copy=False)
