"""The image tower in int8: exported to ONNX once, quantised, cached, run by ONNX Runtime.

Why not torch: torch.ao's dynamic quantisation leaves attention's input projection and the
patch convolution in fp32 and measured slower than bf16 on an AVX-512 VNNI CPU, while ONNX
Runtime's integer kernels (u8 activations x s8 weights, the VNNI instruction's own format)
quantise every weight matrix of the tower. Text stays in torch: a query is one short string.

The quantised file is built from the loaded fp32 weights the first time an int8 encoder is
loaded (about a second for the tiny test model, ~10 s for ViT-B/32) and kept in the models folder,
keyed by everything that shapes it: the model id, a digest of the tower's weights, the opset,
this module's export version, the quantisation options and the ONNX Runtime version. A
SHA-256 sidecar written after the file detects partial or damaged files, which are rebuilt.

onnx and onnxruntime (the ``fast`` extra) are imported only when an int8 encoder is built.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import ModelError

log = logging.getLogger(__name__)

# Bump when the export or quantisation changes what the file computes: old files are then
# ignored (and can be deleted), never reused.
EXPORT_VERSION = 1
OPSET = 17
CACHE_FOLDER = "onnx-int8"
MISSING_EXTRA = "int8 needs the 'fast' extra: pip install 'kezhao[fast]'"
# The freshly built file must agree with the fp32 tower on a probe batch at least this well;
# int8 measured >= 0.9998 on real photos, so anything lower means a broken export.
_SANITY_COSINE = 0.98


@dataclass(frozen=True)
class QuantOptions:
    """How ``quantize_dynamic`` is called; part of the cache key.

    Defaults are the measured winner on a ViT-B/32 tower (docs/performance.md, "Levers"):
    signed int8 weights (u8 x s8 is what VNNI multiplies natively; u8 weights ran at about
    half the speed), per-channel scales (same speed, closer to fp32), full range
    (``reduce_range`` is for CPUs without VNNI and cost accuracy), and every MatMul, Gemm and
    fused Attention; a convolution left in the graph stays fp32 (ConvInteger was slower).
    """

    weight_type: str = "QInt8"
    per_channel: bool = True
    reduce_range: bool = False
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Attention")


DEFAULT_OPTIONS = QuantOptions()


def require_fast_extra() -> tuple[Any, Any]:
    """Import onnx and onnxruntime, or fail with one line that says how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise ModelError(MISSING_EXTRA) from error
    return onnx, onnxruntime


class Int8ImageTower:
    """Runs the quantised tower: ``(n, 3, s, s)`` float32 pixels in, raw features out.

    One ONNX Runtime session per thread count, made on first use: the pipeline can cap the
    model's threads per run (``torch_threads``), and the tower follows torch's setting so
    ``--model-threads`` means the same for every precision. Thread-safe.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Int8ImageTower({self.path.name!r})"

    def __call__(self, pixels: np.ndarray, threads: int | None = None) -> np.ndarray:
        session = self.session(threads or _torch_threads())
        features = session.run(None, {"pixels": np.ascontiguousarray(pixels, np.float32)})[0]
        return np.asarray(features, dtype=np.float32)

    def session(self, threads: int) -> Any:
        """The session for ``threads`` intra-op threads (made once, then reused)."""
        with self._lock:
            if threads not in self._sessions:
                self._sessions[threads] = _session(self.path, threads)
            return self._sessions[threads]


def load_image_tower(
    visual: Any,
    *,
    cache_dir: Path,
    model_id: str,
    options: QuantOptions = DEFAULT_OPTIONS,
) -> Int8ImageTower:
    """The int8 tower for this fp32 ``visual`` module: from the cache, else built once.

    ``visual`` must still hold fp32 weights (they are digested for the cache key and, on a
    miss, exported). Raises :class:`ModelError` when the extra is missing or the export fails.
    """
    _, ort = require_fast_extra()
    folder = Path(cache_dir) / CACHE_FOLDER
    key = _cache_key(visual, model_id, options, ort.__version__)
    path = folder / f"image-{key}.onnx"
    problem = _check_cached(path)
    if problem is None:
        return Int8ImageTower(path)
    if problem != "missing":
        log.warning("int8 image model %s is unusable (%s); rebuilding it", path, problem)
    log.info("building the int8 image model for %s once (it is cached in %s)", model_id, folder)
    build_int8_file(visual, path, options)
    return Int8ImageTower(path)


def build_int8_file(visual: Any, path: Path, options: QuantOptions = DEFAULT_OPTIONS) -> Path:
    """Export ``visual`` to ONNX, quantise it and write it (and its digest) atomically.

    Every intermediate lives in a temporary folder next to ``path``; a crash leaves no
    half-written file under the final name. The result is checked against the fp32 tower
    on a probe batch before it is kept.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(path.parent)
    with tempfile.TemporaryDirectory(prefix=".building-", dir=path.parent) as tmp:
        fp32_file, int8_file = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_image_tower(visual, fp32_file)
        quantise(fp32_file, int8_file, options)
        probe = torch.randn(2, 3, *_input_size(visual), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = visual(probe).float().numpy()
        got = Int8ImageTower(int8_file)(probe.numpy(), threads=1)
        cosine = float(np.min(_row_cosines(expected, got)))
        if not cosine >= _SANITY_COSINE:
            raise ModelError(f"The int8 image model disagrees with fp32 (cosine {cosine:.3f}).")
        digest = _file_sha256(int8_file)
        os.replace(int8_file, path)
        _write_atomic(_digest_path(path), digest.encode())
    return path


def _remove_abandoned_builds(folder: Path, older_than_s: float = 3600.0) -> None:
    """A build killed mid-way (power cut, SIGKILL) leaves its temporary folder; one older
    than any real build cannot belong to a running one, so its space is given back."""
    import shutil
    import time

    cutoff = time.time() - older_than_s
    for leftover in folder.glob(".building-*"):
        try:
            stale = leftover.stat().st_mtime < cutoff
            if stale and leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def export_image_tower(visual: Any, path: Path) -> Path:
    """Write ``visual`` (fp32) as an ONNX graph with a dynamic batch axis.

    Uses torch's TorchScript exporter (no onnxscript needed), on a copy rewritten for
    speed with the same arithmetic (:func:`prepare_for_export`).
    """
    import copy

    import torch

    tower = prepare_for_export(copy.deepcopy(visual).float().eval())
    example = torch.zeros(1, 3, *_input_size(visual))
    try:
        with _no_fused_attention(), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                tower, (example,), str(path), dynamo=False, opset_version=OPSET,
                input_names=["pixels"], output_names=["features"],
                dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}},
                custom_opsets={"com.microsoft": 1},
            )
    except Exception as error:  # the exporter raises many types for unsupported modules
        reason = _first_line(error)
        raise ModelError(f"Could not export the image tower to ONNX: {reason}") from error
    return Path(path)


def quantise(source: Path, target: Path, options: QuantOptions = DEFAULT_OPTIONS) -> Path:
    """Dynamic int8 quantisation of ``source``'s weights into ``target``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet_quantiser():
            quantize_dynamic(
                str(source), str(target),
                op_types_to_quantize=list(options.op_types),
                per_channel=options.per_channel,
                reduce_range=options.reduce_range,
                weight_type=QuantType[options.weight_type],
            )
    except Exception as error:  # the quantiser raises many types for graphs it cannot read
        raise ModelError(f"Could not quantise the image tower: {_first_line(error)}") from error
    return Path(target)


# --- the cache ------------------------------------------------------------------------


def _cache_key(visual: Any, model_id: str, options: QuantOptions, ort_version: str) -> str:
    identity = {
        "model_id": model_id,
        "weights": weights_digest(visual),
        "opset": OPSET,
        "export_version": EXPORT_VERSION,
        "options": asdict(options),
        "onnxruntime": ort_version,
    }
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def weights_digest(module: Any) -> str:
    """SHA-256 over a module's tensors (names, dtypes, shapes, fp32 bytes).

    The model id alone would not do: a checkpoint's id is its file's hash, but a random
    test model or changed weights behind the same preset tag must never reuse a file.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        values = tensor.detach().cpu()
        if values.is_floating_point():
            values = values.float()
        array = np.ascontiguousarray(values.numpy())
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _check_cached(path: Path) -> str | None:
    """None when ``path`` is complete and matches its digest; else what is wrong."""
    if not path.exists():
        return "missing"
    try:
        expected = _digest_path(path).read_text().strip()
    except OSError:
        return "no digest file"
    try:
        actual = _file_sha256(path)
    except OSError as error:
        return error.strerror or "unreadable"
    return None if actual == expected else "digest mismatch"


def _digest_path(path: Path) -> Path:
    return path.with_suffix(".sha256")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


# --- running --------------------------------------------------------------------------


def _session(path: Path, threads: int) -> Any:
    """A sequential CPU session. Its threads spin between ops by default; turning that off
    measured no different inside the indexing pipeline (22-24 photos/s either way)."""
    _, ort = require_fast_extra()
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: its graph-fusion notes are not for users
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise ModelError(f"Could not load the int8 image model {path}: "
                         f"{_first_line(error)}") from error


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def _input_size(visual: Any) -> tuple[int, int]:
    size = visual.image_size
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --- export helpers -------------------------------------------------------------------


def prepare_for_export(tower: Any) -> Any:
    """Rewrite a ViT tower in place into the form that quantises best; returns it.

    Same weights and arithmetic, different graph: (1) the patch embedding, a convolution
    whose stride equals its kernel, becomes a MatMul over flattened patches (the quantised
    convolution measured ~19% of the int8 run time; as a MatMul it takes ~2%); (2) each
    plain self-attention block becomes ONNX Runtime's fused ``Attention`` op, which the
    quantiser turns into ``QAttention`` (int8 QKV projection, no per-head transposes:
    ~10% faster than the same maths as separate MatMuls, ~25% faster than exporting
    nn.MultiheadAttention as is). Anything shaped otherwise is left as it is.
    """
    import types

    import torch

    conv = getattr(tower, "conv1", None)
    if (
        isinstance(conv, torch.nn.Conv2d)
        and conv.kernel_size == conv.stride
        and conv.padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.bias is None
    ):
        conv.forward = types.MethodType(_patch_embedding, conv)
    for block in getattr(getattr(tower, "transformer", None), "resblocks", ()):
        attn = getattr(block, "attn", None)
        if (
            callable(getattr(block, "attention", None))
            and isinstance(attn, torch.nn.MultiheadAttention)
            and attn._qkv_same_embed_dim
            and attn.in_proj_bias is not None
            and not hasattr(block, "ln_1_kv")
        ):
            block.attention = types.MethodType(_fused_attention, block)
    return tower


def _patch_embedding(conv: Any, pixels: Any) -> Any:
    """``conv(pixels)`` for a stride == kernel convolution, as one MatMul over patches."""
    width, channels, ph, pw = conv.weight.shape
    gh, gw = pixels.shape[-2] // ph, pixels.shape[-1] // pw
    patches = pixels.reshape(-1, channels, gh, ph, gw, pw).permute(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(-1, gh * gw, channels * ph * pw)
    out = patches @ conv.weight.reshape(width, channels * ph * pw).t()
    return out.transpose(1, 2).reshape(-1, width, gh, gw)


def _fused_attention(block: Any, q_x: Any, k_x: Any = None, v_x: Any = None,
                     attn_mask: Any = None) -> Any:
    """open_clip's ``ResidualAttentionBlock.attention`` (unmasked self-attention), exported
    as ONNX Runtime's ``com.microsoft.Attention`` followed by the output projection."""
    import torch.nn.functional as F  # noqa: N812

    if attn_mask is not None or k_x is not None or v_x is not None:
        raise ValueError("only unmasked self-attention can be exported")
    mha = block.attn
    x = q_x if mha.batch_first else q_x.transpose(0, 1)
    # Attention's weight is (hidden, 3*hidden) with Q, K, V side by side: in_proj transposed.
    out = _attention_function().apply(x, mha.in_proj_weight.t(), mha.in_proj_bias, mha.num_heads)
    out = F.linear(out, mha.out_proj.weight, mha.out_proj.bias)
    return out if mha.batch_first else out.transpose(0, 1)


def _attention_function() -> Any:
    """A torch autograd Function that computes multi-head self-attention (so tracing sees
    the right shapes and the tests can compare it with torch) and exports as one op."""
    import torch

    class OrtAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, weight: Any, bias: Any, heads: int) -> Any:
            batch, length, dim = x.shape
            qkv = (x @ weight + bias).reshape(batch, length, 3, heads, dim // heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dim // heads))
            out = torch.softmax(scores, dim=-1) @ v
            return out.transpose(1, 2).reshape(batch, length, dim)

        @staticmethod
        def symbolic(g: Any, x: Any, weight: Any, bias: Any, heads: int) -> Any:
            out = g.op("com.microsoft::Attention", x, weight, bias, num_heads_i=heads)
            out.setType(x.type())  # same shape and dtype as x; spares torch's warning
            return out

    return OrtAttention


@contextmanager
def _no_fused_attention() -> Iterator[None]:
    """Keep any remaining nn.MultiheadAttention off its fused fast path while tracing: the
    exporter has no ONNX form for ``_native_multi_head_attention``."""
    import torch

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


class _DropNotice(logging.Filter):
    """Drops the quantiser's root-logger chatter: per-tensor notes and its advice to run
    its pre-processing first (measured: no gain here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _quiet_quantiser() -> Iterator[None]:
    root = logging.getLogger()
    notice = _DropNotice()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)
