"""Near-duplicate groups and the photo to keep in each. Pure: arrays and photos in, groups
and reasons out; the library-level calls live in `search.cleanup`.

Two photos are duplicates at a strictness level when their files are identical, or when
both their CLIP embeddings are close (cosine) *and* their perceptual hashes are close
(Hamming distance). Each signal alone is fooled by something the other catches: CLIP calls
two different shots of the same kind of scene similar, the 64-bit pHash calls unrelated
flat or dark pictures similar. Together they separate "the same picture, copied" from
"another picture of the same thing".

Groups never chain: a group is built around its best photo (the seed) and a photo joins
only if it matches *every* photo already in the group (complete linkage), so A~B and B~C
never pull an unrelated C next to A.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from indexer.catalog import Photo
from indexer.errors import KezhaoError
from search.quality_rules import BLURRY_BELOW, pixels

# Up to this many vectors in one scope the all-pairs pass is exact (flat index); above it an
# inverted-file index visits the nearest cells only (measured recall of matching pairs
# above 99.8% at 100k vectors; see benchmarks/duplicates.py).
FLAT_SEARCH_LIMIT = 20_000
_IVF_PROBES = 16
_IVF_TRAIN_ITERATIONS = 10
_IVF_TRAIN_PER_LIST = 24
# Range-search results held at once (12 bytes each); bounds memory whatever the model.
_RESULT_BUDGET = 20_000_000

CAMERA_FORMATS = frozenset({"JPEG", "HEIF", "HEIC", "TIFF"})
_EXPORT_FORMATS = frozenset({"PNG", "WEBP"})
_FULL_SIZE = 0.8  # at least this share of the group's largest pixel count is "full size"
_RELATIVELY_BLURRY = 0.25  # sharpness under this share of the group's sharpest is blurry
_SOFTER = 0.5  # under the absolute threshold counts only when half as sharp or less
_RECOMPRESSED = 0.7  # bits per pixel under this share of the keeper's, same format


class DuplicateError(KezhaoError):
    """A duplicate request we cannot honour (unknown strictness, bad group id...)."""


@dataclass(frozen=True)
class Strictness:
    """A user-facing strictness level. ``min_cosine``/``max_hamming`` are None for
    `exact`, which compares file contents only. With ``separate_shots``, two photos whose
    cameras recorded different capture times are different shots, never copies: copies
    keep the original's EXIF time or lose it, burst frames each get their own."""

    name: str
    min_cosine: float | None
    max_hamming: int | None
    meaning: str
    separate_shots: bool = False


STRICTNESS: Mapping[str, Strictness] = MappingProxyType(
    {
        "exact": Strictness(
            "exact", None, None,
            "the same file: byte-for-byte identical copies, e.g. one photo saved in two "
            "folders or sent back and forth unchanged",
        ),
        "near": Strictness(
            "near", 0.92, 10,
            "the same picture: also copies that were resized, re-compressed, re-saved in "
            "another format, lightly cropped or brightened; two camera files taken at "
            "different times are never near duplicates",
            separate_shots=True,
        ),
        "similar": Strictness(
            "similar", 0.85, 20,
            "the same moment: also different shots of one scene taken moments apart (a "
            "burst where someone moved) - review these before removing any",
        ),
    }
)
DEFAULT_STRICTNESS = "near"
LOOSEST = "similar"


def strictness(name: str) -> Strictness:
    try:
        return STRICTNESS[name]
    except KeyError:
        raise DuplicateError(
            f"unknown strictness {name!r}; choose one of {', '.join(STRICTNESS)}"
        ) from None


# ----------------------------------------------------------------- group ids
def group_id(photo_ids: Sequence[int]) -> str:
    """A group's id: its photo ids, sorted, joined by commas. It names the members
    themselves, so it still means the same photos in a later command."""
    return ",".join(str(i) for i in sorted({int(i) for i in photo_ids}))


def parse_group_id(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) < 2 or not all(p.isdigit() for p in parts):
        raise DuplicateError(
            f"{text!r} is not a duplicate group; use a GROUP shown by `kezhao dupes` "
            "(photo ids joined by commas)"
        )
    ids = tuple(sorted({int(p) for p in parts}))
    if len(ids) < 2:
        raise DuplicateError(f"group {text!r} names only one photo")
    return ids


# ------------------------------------------------------------------ matching
def hamming_many(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise distances between two arrays of 64-bit hashes (signed storage is fine)."""
    xa = np.ascontiguousarray(a, dtype=np.int64).view(np.uint64)
    xb = np.ascontiguousarray(b, dtype=np.int64).view(np.uint64)
    return np.bitwise_count(xa ^ xb).astype(np.int32)


def phash_array(photos: Sequence[Photo]) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, known): photos indexed without a hash never match on it."""
    known = np.fromiter((p.phash is not None for p in photos), dtype=bool, count=len(photos))
    hashes = np.fromiter((p.phash or 0 for p in photos), dtype=np.int64, count=len(photos))
    return hashes, known


def shot_times(photos: Sequence[Photo]) -> np.ndarray:
    """Each photo's camera capture time as a comparable number, -1 where the time did
    not come from EXIF (file names and modification times say nothing about shots)."""
    codes: dict[str, int] = {}
    return np.fromiter(
        (
            codes.setdefault(p.taken_at, len(codes))
            if p.taken_at and p.taken_at_source == "exif" else -1
            for p in photos
        ),
        dtype=np.int64, count=len(photos),
    )


def _different_shots(times: np.ndarray | None, rows: np.ndarray, cols: np.ndarray
                     ) -> np.ndarray:
    if times is None:
        return np.zeros(len(rows), dtype=bool)
    a, b = times[rows], times[cols]
    return (a >= 0) & (b >= 0) & (a != b)


def _range_index(vectors: np.ndarray, flat_limit: int):
    import faiss  # lazily: importing FAISS costs every CLI command start-up time

    n, dim = vectors.shape
    if n <= flat_limit:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = max(1, min(int(4 * math.sqrt(n)), n // _IVF_TRAIN_PER_LIST))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = _IVF_TRAIN_ITERATIONS
        index.cp.min_points_per_centroid = _IVF_TRAIN_PER_LIST  # enough for coarse cells
        sample = min(n, nlist * _IVF_TRAIN_PER_LIST)
        rng = np.random.default_rng(0)  # same vectors, same index, same groups
        index.train(vectors[np.sort(rng.choice(n, sample, replace=False))])
        index.nprobe = _IVF_PROBES
    index.add(vectors)
    return index


def similar_pairs(
    vectors: np.ndarray,
    phashes: np.ndarray,
    level: Strictness,
    *,
    hashed: np.ndarray | None = None,
    times: np.ndarray | None = None,
    flat_limit: int = FLAT_SEARCH_LIMIT,
) -> np.ndarray:
    """All pairs (i < j, as rows of an (m, 2) array) matching at `level` by embedding and
    perceptual hash (and capture time, see `Strictness`). FAISS finds the pairs over the
    cosine threshold (range search, in batches so memory stays bounded); the other tests
    are applied to each batch at once."""
    n = len(vectors)
    if n < 2 or level.min_cosine is None or level.max_hamming is None:
        return np.zeros((0, 2), dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    hashed = np.ones(n, dtype=bool) if hashed is None else hashed
    index = _range_index(vectors, flat_limit)
    # The most results one query can return: every vector it scans.
    scanned = n if n <= flat_limit else min(n, _IVF_PROBES * n // index.nlist + 1)
    batch = max(16, min(4096, _RESULT_BUDGET // scanned))
    found: list[np.ndarray] = []
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        lims, _, labels = index.range_search(vectors[start:stop], float(level.min_cosine))
        rows = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(lims).astype(np.int64))
        cols = labels.astype(np.int64)
        keep = (cols != rows) & (cols >= 0)
        rows, cols = rows[keep], cols[keep]
        keep = hashed[rows] & hashed[cols]
        keep &= hamming_many(phashes[rows], phashes[cols]) <= level.max_hamming
        if level.separate_shots:
            keep &= ~_different_shots(times, rows, cols)
        rows, cols = rows[keep], cols[keep]
        found.append(np.stack([np.minimum(rows, cols), np.maximum(rows, cols)], axis=1))
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def identical_pairs(content_hashes: Sequence[str]) -> np.ndarray:
    """Every pair of byte-identical files (i < j)."""
    sets: dict[str, list[int]] = {}
    for i, digest in enumerate(content_hashes):
        sets.setdefault(digest, []).append(i)
    pairs = [
        (a, b) for rows in sets.values() if len(rows) > 1
        for k, a in enumerate(rows) for b in rows[k + 1:]
    ]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def complete_linkage_groups(
    pairs: np.ndarray,
    order: Sequence[int],
    vectors: np.ndarray | None = None,
    phashes: np.ndarray | None = None,
) -> list[list[int]]:
    """Complete-linkage groups: seeds in quality order; a candidate joins when it matches
    every member so far, closest to the seed first (hash distance, then cosine).

    A candidate stays out of a seed's group when it is closer to another photo that can
    never be in that group (e.g. a copy of frame 1 of a burst, which also resembles frame
    2): it waits for its own original instead of being split from it.
    """
    neighbours: dict[int, set[int]] = {}
    for i, j in pairs.tolist():
        neighbours.setdefault(i, set()).add(j)
        neighbours.setdefault(j, set()).add(i)

    def distance(i: int, j: int) -> tuple[int, float]:
        bits = 0 if phashes is None else int(hamming_many(phashes[[i]], phashes[[j]])[0])
        cosine = 0.0 if vectors is None else float(vectors[i] @ vectors[j])
        return bits, -cosine

    assigned: set[int] = set()
    groups: list[list[int]] = []
    rank = {int(i): r for r, i in enumerate(order)}
    for seed in order:
        seed = int(seed)
        if seed in assigned or seed not in neighbours:
            continue
        candidates = sorted(neighbours[seed] - assigned,
                            key=lambda j: (distance(seed, j), rank[j]))
        members = [seed]
        for candidate in candidates:
            here = distance(candidate, seed)
            if any(
                other not in neighbours[seed] and distance(candidate, other) < here
                for other in neighbours[candidate] - assigned - {seed}
            ):
                continue
            if all(m in neighbours[candidate] for m in members[1:]):
                members.append(candidate)
        if len(members) > 1:
            assigned.update(members)
            groups.append(members)
    return groups


def find_groups(
    level: Strictness,
    content_hashes: Sequence[str],
    order: Sequence[int],
    *,
    vectors: np.ndarray | None = None,
    phashes: np.ndarray | None = None,
    hashed: np.ndarray | None = None,
    times: np.ndarray | None = None,
    scopes: Sequence[Hashable] | None = None,
    flat_limit: int = FLAT_SEARCH_LIMIT,
) -> list[list[int]]:
    """Duplicate groups as lists of row indices, the seed (best by `order`) first.

    `order` lists every row best first; `scopes` (e.g. each photo's client) keeps groups
    inside one scope — the pass then runs per scope, which is also cheaper.
    """
    n = len(content_hashes)
    scope_rows: dict[Hashable, list[int]] = {}
    for i in range(n):
        scope_rows.setdefault(None if scopes is None else scopes[i], []).append(i)
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(n)
    groups: list[list[int]] = []
    for rows in scope_rows.values():
        if len(rows) < 2:
            continue
        idx = np.asarray(rows, dtype=np.int64)
        pairs = identical_pairs([content_hashes[i] for i in rows])
        sub_vectors = None
        if level.min_cosine is not None:
            if vectors is None or phashes is None:
                raise ValueError(f"strictness {level.name!r} needs vectors and hashes")
            sub_vectors = np.ascontiguousarray(vectors[idx], dtype=np.float32)
            near = similar_pairs(
                sub_vectors, phashes[idx], level,
                hashed=None if hashed is None else hashed[idx],
                times=None if times is None else times[idx], flat_limit=flat_limit,
            )
            pairs = np.concatenate([pairs, near]) if len(near) else pairs
        local_order = np.argsort(rank[idx], kind="stable")
        sub_hashes = None if phashes is None else phashes[idx]
        for members in complete_linkage_groups(pairs, local_order.tolist(), sub_vectors,
                                               sub_hashes):
            groups.append([rows[m] for m in members])
    return groups


def pair_matches(
    a: Photo, b: Photo, va: np.ndarray | None, vb: np.ndarray | None, level: Strictness
) -> bool:
    """Whether two photos match at `level` (used to re-check a group before acting)."""
    if a.content_hash == b.content_hash:
        return True
    if level.min_cosine is None or level.max_hamming is None:
        return False
    if va is None or vb is None or a.phash is None or b.phash is None:
        return False
    if level.separate_shots and bool(_different_shots(shot_times([a, b]), np.array([0]),
                                                     np.array([1]))[0]):
        return False
    cosine = float(np.dot(va, vb))
    distance = int(hamming_many(np.array([a.phash]), np.array([b.phash]))[0])
    return cosine >= level.min_cosine and distance <= level.max_hamming


def strictest_match(
    photos: Sequence[Photo], vectors: Mapping[int, np.ndarray | None]
) -> Strictness | None:
    """The strictest level at which every pair of these photos matches, or None."""
    for level in STRICTNESS.values():
        if all(
            pair_matches(a, b, vectors.get(a.id), vectors.get(b.id), level)
            for k, a in enumerate(photos)
            for b in photos[k + 1 :]
        ):
            return level
    return None


# --------------------------------------------------------------- the keeper
def has_camera_data(photo: Photo) -> bool:
    """An original camera file carries the camera's make or model in its EXIF; exports
    from editors and chat apps usually drop it."""
    return bool(photo.camera_make or photo.camera_model)


def _camera_format(photo: Photo) -> bool:
    return (photo.format or "").upper() in CAMERA_FORMATS


def _bits_per_pixel(photo: Photo) -> float:
    px = pixels(photo)
    return 8.0 * photo.size / px if px else 0.0


def _clipped(photo: Photo) -> float:
    return float(photo.shadows_clipped or 0.0) + float(photo.highlights_clipped or 0.0)


def _sharpness(photo: Photo) -> float:
    return float(photo.sharpness or 0.0)


def quality_order(photos: Sequence[Photo]) -> list[int]:
    """Row indices best first, by the same preferences as the keeper choice but without
    a group to compare against (used to seed groups with their likely keeper)."""

    def key(i: int) -> tuple:
        p = photos[i]
        return (
            _sharpness(p) >= BLURRY_BELOW, pixels(p), has_camera_data(p), _camera_format(p),
            _bits_per_pixel(p), -_clipped(p), _sharpness(p), -p.id,
        )

    return sorted(range(len(photos)), key=key, reverse=True)


@dataclass(frozen=True)
class Verdict:
    """The suggested keeper of a group and one line per photo saying why."""

    keeper_id: int
    reasons: Mapping[int, str]
    blurry: frozenset[int]


def _blurry_members(photos: Sequence[Photo]) -> frozenset[int]:
    """Much softer than the sharpest of the group, or blurry by the absolute threshold
    and clearly softer than the sharpest (so 29 next to 31 is not called blurry)."""
    top = max(_sharpness(p) for p in photos)
    return frozenset(
        p.id for p in photos
        if _sharpness(p) < _RELATIVELY_BLURRY * top
        or (_sharpness(p) < BLURRY_BELOW and _sharpness(p) < _SOFTER * top)
    )


def choose_keeper(photos: Sequence[Photo], keep: int | None = None) -> Verdict:
    """Pick the photo to keep by quality, never by file order: a sharp one over a blurry
    one; a full-size one over a smaller copy; the camera original (with camera EXIF) over
    a derived copy; a camera format (JPEG, HEIC, TIFF) over a PNG/WebP re-export; less
    compression, less clipping, more sharpness; and only then the first indexed.
    `keep` overrides the choice (the user's word wins) but the reasons stay honest."""
    if len(photos) < 2:
        raise ValueError("a group has at least two photos")
    blurry = _blurry_members(photos)
    largest = max(pixels(p) for p in photos)

    def key(p: Photo) -> tuple:
        return (
            p.id not in blurry, pixels(p) >= _FULL_SIZE * largest, has_camera_data(p),
            _camera_format(p), pixels(p), round(_bits_per_pixel(p), 2), -round(_clipped(p), 3),
            _sharpness(p), -p.id,
        )

    if keep is not None:
        chosen = [p for p in photos if p.id == keep]
        if not chosen:
            raise DuplicateError(f"photo #{keep} is not in this group")
        keeper = chosen[0]
    else:
        keeper = max(photos, key=key)
    reasons = {keeper.id: _keeper_reason(keeper, photos, blurry, chosen=keep is not None)}
    for p in photos:
        if p.id != keeper.id:
            reasons[p.id] = _copy_reason(p, keeper, blurry)
    return Verdict(keeper.id, MappingProxyType(reasons), blurry)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _keeper_reason(
    keeper: Photo, photos: Sequence[Photo], blurry: frozenset[int], *, chosen: bool
) -> str:
    others = [p for p in photos if p.id != keeper.id]
    if all(p.content_hash == keeper.content_hash for p in others):
        return "chosen by you" if chosen else "identical files; kept the first indexed"
    best: list[str] = []
    if all(pixels(keeper) >= pixels(p) for p in others) and any(
        pixels(p) < 0.995 * pixels(keeper) for p in others
    ):
        best.append("largest")
    if all(_sharpness(keeper) >= _sharpness(p) for p in others) and any(
        _sharpness(p) < 0.9 * _sharpness(keeper) for p in others
    ):
        best.append("sharpest")
    if has_camera_data(keeper) and any(not has_camera_data(p) for p in others):
        best.append("camera original")
    if _camera_format(keeper) and any(
        (p.format or "").upper() in _EXPORT_FORMATS for p in others
    ):
        best.append(f"original {keeper.format}")
    if not best:
        same_format = [p for p in others if p.format == keeper.format]
        if same_format and all(
            _bits_per_pixel(p) < _RECOMPRESSED * _bits_per_pixel(keeper) for p in same_format
        ):
            best.append("least compressed")
    if keeper.id in blurry:
        best.insert(0, f"blurry (sharpness {_sharpness(keeper):.0f})")
    text = _join(best) if best else "best quality of the group"
    return f"chosen by you; {text}" if chosen else text


def _resolution_phrase(ratio: float) -> str | None:
    if ratio >= 0.995:
        return None
    if ratio > _FULL_SIZE:
        return f"cropped or resized ({ratio:.0%} of the pixels)"
    if ratio <= 1 / 1.75:
        return f"1/{round(1 / ratio)} resolution" if ratio > 0 else "no size recorded"
    return f"{ratio:.0%} resolution"


def _copy_reason(photo: Photo, keeper: Photo, blurry: frozenset[int]) -> str:
    if photo.content_hash == keeper.content_hash:
        return f"identical file (same bytes as #{keeper.id})"
    kpx = pixels(keeper)
    ratio = pixels(photo) / kpx if kpx else 1.0
    size = _resolution_phrase(ratio) if kpx else None
    # A blurred picture compresses better, and a small one looks soft when shown at the
    # size of the others: say the cause, not its side effect.
    is_blurry = photo.id in blurry and keeper.id not in blurry
    blur = None
    if is_blurry and ratio > 1 / 1.75:
        blur = f"blurry: sharpness {_sharpness(photo):.0f} vs {_sharpness(keeper):.0f}"
    kind = None
    fmt, kfmt = (photo.format or "").upper(), (keeper.format or "").upper()
    if fmt in _EXPORT_FORMATS and kfmt in CAMERA_FORMATS:
        kind = f"re-saved as {fmt}"
    elif (fmt == kfmt and not is_blurry
          and _bits_per_pixel(photo) < _RECOMPRESSED * _bits_per_pixel(keeper)):
        kind = "re-compressed copy"
    elif has_camera_data(keeper) and not has_camera_data(photo):
        kind = "copy without camera data"
    if kind is None and size is not None and not size.startswith("cropped") and ratio < 1:
        kind = "smaller copy"
    exposure = None
    if _clipped(photo) - _clipped(keeper) >= 0.05:
        exposure = f"worse exposure: {_clipped(photo):.0%} of pixels clipped"
    elif abs(float(photo.brightness or 0) - float(keeper.brightness or 0)) >= 0.03:
        exposure = (
            f"brightness changed ({float(photo.brightness or 0):.0%} vs "
            f"{float(keeper.brightness or 0):.0%})"
        )
    found = [x for x in (kind, size, blur, exposure) if x]
    if not found and pixels(photo) > kpx:
        found.append("larger, but ranked lower")
    return ", ".join(found) if found else "same picture, slightly lower quality"
