"""Reading text in pictures: a narrow wrapper around RapidOCR's PP-OCR models.

The OCR pass needs two separate steps — *detect* where text is, then *recognise* it — so a
photo without text costs one detector run and nothing more, and so tests can check that
recognition was never asked for. :class:`OcrEngine` is that two-step interface;
:class:`RapidOcrEngine` implements it with the Chinese+English PP-OCRv4 models shipped inside
the ``rapidocr-onnxruntime`` wheel (offline, Apache-2.0).

Images cross this boundary as upright RGB ``numpy`` arrays; boxes leave it as four corners
in fractions of the image's width and height, so they stay valid for any rendition of the
photo (original, OCR working size, thumbnail). rapidocr and onnxruntime are imported on
first use, so the CLI starts fast and a machine without the ``ocr`` extra still runs
everything else.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.errors import ModelError

OCR_PACKAGE = "rapidocr-onnxruntime"
OCR_MODELS = "PP-OCRv4 ch det+rec"
MIN_CONFIDENCE = 0.5
MAX_LINES = 200

Box = tuple[tuple[float, float], ...]


class OcrUnavailableError(ModelError):
    """The text reader cannot be loaded (the optional ``ocr`` extra is not installed)."""


@dataclass(frozen=True)
class TextLine:
    """One line of text found in a picture.

    ``box`` holds the four corners (top-left, top-right, bottom-right, bottom-left) as
    fractions of the picture's width and height.
    """

    text: str
    confidence: float
    box: Box


@dataclass(frozen=True)
class TextRegions:
    """What the detector found in one picture, kept so recognition can follow.

    ``boxes`` are corner quadrilaterals in pixels of ``image`` (shape ``(n, 4, 2)``);
    ``image`` is the picture in the channel order the engine works in.
    """

    image: np.ndarray
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 2), np.float32))

    @property
    def empty(self) -> bool:
        return len(self.boxes) == 0


class OcrEngine(Protocol):
    """The two steps of reading text; ``model_version`` is stored with every read."""

    model_version: str

    def detect(self, image: np.ndarray) -> TextRegions: ...

    def recognise(self, regions: TextRegions) -> list[TextLine]: ...


def ocr_model_version() -> str:
    """The version stamp of the shipped models, without loading them.

    Tied to the package version, because the wheel pins the model files it ships.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{OCR_PACKAGE} {version(OCR_PACKAGE)} ({OCR_MODELS})"
    except PackageNotFoundError:
        raise _unavailable("the package is not installed") from None


def _unavailable(reason: str) -> OcrUnavailableError:
    return OcrUnavailableError(
        f"reading text in photos needs the optional OCR models ({reason}); install them "
        "with `pip install 'kezhao[ocr]'` (or `make setup`, which includes them)"
    )


class RapidOcrEngine:
    """PP-OCRv4 detection, orientation and recognition through onnxruntime on the CPU.

    The ONNX sessions load on first use and are reused; a lock serialises calls because
    one session object is not meant to be driven from several threads at once.
    """

    def __init__(
        self,
        *,
        threads: int | None = None,
        min_confidence: float = MIN_CONFIDENCE,
        max_lines: int = MAX_LINES,
    ) -> None:
        self.model_version = ocr_model_version()
        self.threads = threads
        self.min_confidence = min_confidence
        self.max_lines = max_lines
        self._ocr: Any = None
        self._lock = threading.Lock()

    def _engine(self) -> Any:
        if self._ocr is None:
            try:
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as err:
                raise _unavailable(f"cannot import it: {err}") from err
            options: dict[str, Any] = {"print_verbose": False}
            if self.threads:
                options["intra_op_num_threads"] = int(self.threads)
            self._ocr = RapidOCR(**options)
        return self._ocr

    def detect(self, image: np.ndarray) -> TextRegions:
        """Find text boxes in an RGB ``(h, w, 3)`` uint8 array (detector only)."""
        bgr = np.ascontiguousarray(image[..., ::-1])
        with self._lock:
            boxes, _ = self._engine()(bgr, use_det=True, use_cls=False, use_rec=False)
        if not boxes:
            return TextRegions(bgr)
        return TextRegions(bgr, np.asarray(boxes, dtype=np.float32).reshape(-1, 4, 2))

    def recognise(self, regions: TextRegions) -> list[TextLine]:
        """Read the detected boxes: straighten each one, fix upside-down lines, recognise."""
        if regions.empty:
            return []
        boxes = regions.boxes[: self.max_lines]
        crops = [crop_text_box(regions.image, box) for box in boxes]
        with self._lock:
            engine = self._engine()
            crops, _, _ = engine.text_cls(crops)
            results, _ = engine.text_rec(crops)
        height, width = regions.image.shape[:2]
        lines = []
        for box, result in zip(boxes, results, strict=True):
            text, confidence = str(result[0]).strip(), float(result[1])
            if text and confidence >= self.min_confidence:
                lines.append(TextLine(text, confidence, normalise_box(box, width, height)))
        return lines


def load_ocr_engine(threads: int | None = None) -> RapidOcrEngine:
    """The default text reader; raises :class:`OcrUnavailableError` when not installed."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError as err:
        raise _unavailable(f"cannot import it: {err}") from err
    return RapidOcrEngine(threads=threads)


# ------------------------------------------------------------------ pure helpers
def crop_text_box(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Cut a (possibly tilted) text quadrilateral out of ``image`` as an upright strip.

    The four corners are mapped onto a rectangle as long and as tall as the box's longer
    edges, so slightly rotated banners are straightened before recognition; a strip much
    taller than wide (vertical writing) is turned on its side, as the recogniser reads
    left to right.
    """
    import cv2

    corners = np.asarray(box, dtype=np.float32).reshape(4, 2)
    top, right, bottom, left = (
        np.linalg.norm(corners[1] - corners[0]),
        np.linalg.norm(corners[2] - corners[1]),
        np.linalg.norm(corners[3] - corners[2]),
        np.linalg.norm(corners[0] - corners[3]),
    )
    width = max(1, round(max(top, bottom)))
    height = max(1, round(max(left, right)))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(corners, target)
    strip = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height >= 1.5 * width:
        strip = np.ascontiguousarray(np.rot90(strip))
    return strip


def normalise_box(box: Sequence[Sequence[float]] | np.ndarray, width: int, height: int) -> Box:
    """Corners in pixels -> corners in fractions of the image size, clipped to [0, 1]."""
    corners = np.asarray(box, dtype=np.float64).reshape(4, 2)
    scale = np.array([max(width, 1), max(height, 1)], dtype=np.float64)
    fractions = np.clip(corners / scale, 0.0, 1.0)
    return tuple((round(float(x), 4), round(float(y), 4)) for x, y in fractions)
