"""One ranking from two kinds of evidence: words read in a photo and what CLIP sees in it.

CLIP is good at "booth with a product demo" and poor at reading "ACME 2024" off a banner;
OCR is the reverse. A query runs both ways — text matches from the OCR catalog, image
matches from the vector index, under the same filters — and the two rankings are merged by
reciprocal rank fusion (each list contributes ``1 / (RRF_K + rank)``), which needs no
calibration between a cosine similarity and a text match. Every hit keeps the evidence it
was found by in its ``reason``.

Text matching is by terms: the query is cut into runs of Chinese/Japanese/Korean characters
and runs of letters and digits, so "客户拜访ACME" and "客户拜访 ACME" ask the same thing
and "ACME-2024" finds a banner read as "ACME 2024". Each term is a substring match, case-
insensitive; photos are ranked by how much of the query their text covers, then by whether
it appears as one phrase, then by whether one line holds it all.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.catalog import PhotoFilter
from search.query import MAX_QUERY_CHARS, MAX_RESULTS, Hit, QueryError, SearchService

RRF_K = 60
CLIP_DEPTH = 100
TEXT_DEPTH = 2000
MAX_TERMS = 8
REASON_CHARS = 60

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_TERM = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class TextMatch:
    """How one photo's text matches a query.

    ``coverage`` is the share of the query's characters found in the text; ``phrase`` says
    the whole query appears as written (spacing and punctuation aside); ``line`` is the
    line that shows the match best, as read.
    """

    photo_id: int
    line: str
    coverage: float
    phrase: bool
    line_coverage: float


def text_terms(query: str, max_terms: int = MAX_TERMS) -> list[str]:
    """The searchable terms of a query, case-folded, in order, without repeats."""
    terms: list[str] = []
    for term in _TERM.findall(query.casefold()):
        if term not in terms:
            terms.append(term)
    return terms[:max_terms]


def match_text(photo_id: int, terms: Sequence[str], text: str) -> TextMatch | None:
    """Score ``text`` against ``terms``; None when no term occurs in it."""
    folded = text.casefold()
    found = [t for t in terms if t in folded]
    if not found:
        return None
    total = sum(len(t) for t in terms)
    best_line, best_cover = "", 0
    for line in text.splitlines():
        cover = sum(len(t) for t in found if t in line.casefold())
        if cover > best_cover:
            best_line, best_cover = line, cover
    phrase = "".join(terms) in _NOT_WORD.sub("", folded)
    return TextMatch(
        photo_id=photo_id,
        line=best_line.strip(),
        coverage=sum(len(t) for t in found) / total,
        phrase=phrase,
        line_coverage=best_cover / total,
    )


def rank_text_matches(
    terms: Sequence[str], candidates: Iterable[tuple[int, str]]
) -> list[TextMatch]:
    """Best text matches first: coverage, then whole phrase, then all on one line."""
    matches = [m for pid, text in candidates if (m := match_text(pid, terms, text)) is not None]
    matches.sort(key=lambda m: (-m.coverage, not m.phrase, -m.line_coverage, m.photo_id))
    return matches


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], k: int = RRF_K
) -> dict[int, float]:
    """Sum over rankings of ``1 / (k + rank)``, rank counted from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, photo_id in enumerate(ranking, 1):
            scores[photo_id] = scores.get(photo_id, 0.0) + 1.0 / (k + rank)
    return scores


def text_reason(match: TextMatch) -> str:
    line = match.line if len(match.line) <= REASON_CHARS else match.line[:REASON_CHARS] + "…"
    return f"text: '{line}'"


class HybridSearch:
    """Text-in-photo matches and CLIP matches for one query, as one list of hits."""

    def __init__(self, service: SearchService) -> None:
        self.service = service
        self.catalog = service.library.catalog

    def search(
        self,
        query: str,
        flt: PhotoFilter | None = None,
        k: int = 20,
        *,
        text_only: bool = False,
        has_text: bool = False,
    ) -> list[Hit]:
        """Hits for ``query`` under ``flt``.

        ``text_only`` uses the words read in photos alone (no model is loaded, so it works
        without CLIP weights); ``has_text`` keeps only photos with text in them. When no
        photo's text matches, the CLIP hits come back as they are (score: cosine);
        otherwise scores are fused RRF scores and the reason shows both kinds of evidence.
        """
        text = " ".join((query or "").split())
        flt = self._checked(text, flt or PhotoFilter(), k)
        if has_text:
            flt = self._only_with_text(flt)
        terms = text_terms(text)
        matches = rank_text_matches(
            terms, self.catalog.ocr_text_candidates(terms, flt, TEXT_DEPTH)
        ) if terms else []
        if text_only:
            return self._text_hits(matches[:k])
        clip_hits = self.service.by_text(text, flt, min(MAX_RESULTS, max(3 * k, CLIP_DEPTH)))
        if not matches:
            return clip_hits[:k]
        return self._fused(matches, clip_hits, k)

    # ------------------------------------------------------------- helpers
    def _checked(self, text: str, flt: PhotoFilter, k: int) -> PhotoFilter:
        if not text:
            raise QueryError("type some words to search for, e.g. 'product demo at booth'")
        if len(text) > MAX_QUERY_CHARS:
            raise QueryError(
                f"query is too long ({len(text)} characters, at most {MAX_QUERY_CHARS})"
            )
        if not 1 <= k <= MAX_RESULTS:
            raise QueryError(f"number of results must be between 1 and {MAX_RESULTS}")
        if flt.client is not None and not self.catalog.client_exists(flt.client):
            known = ", ".join(c.name for c in self.catalog.clients()[:10]) or "none yet"
            raise QueryError(f"no client named {flt.client!r} (known clients: {known})")
        return flt

    def _only_with_text(self, flt: PhotoFilter) -> PhotoFilter:
        ids = self.catalog.ocr_photo_ids_with_text()
        if flt.photo_ids is not None:
            ids = np.intersect1d(ids, np.asarray(flt.photo_ids, dtype=np.int64))
        return dataclasses.replace(flt, photo_ids=tuple(int(i) for i in ids))

    def _text_hits(self, matches: Sequence[TextMatch]) -> list[Hit]:
        photos = self.catalog.photos_by_ids([m.photo_id for m in matches])
        return [
            Hit(photos[m.photo_id], m.coverage, text_reason(m))
            for m in matches
            if m.photo_id in photos
        ]

    def _fused(self, matches: Sequence[TextMatch], clip_hits: Sequence[Hit], k: int) -> list[Hit]:
        text_rank = {m.photo_id: rank for rank, m in enumerate(matches, 1)}
        clip_rank = {h.photo.id: rank for rank, h in enumerate(clip_hits, 1)}
        scores = reciprocal_rank_fusion([list(text_rank), list(clip_rank)])
        order = sorted(
            scores,
            key=lambda pid: (
                -scores[pid],
                text_rank.get(pid, math.inf),  # a tie goes to the photo whose words match
                clip_rank.get(pid, math.inf),
            ),
        )[:k]
        by_text = {m.photo_id: m for m in matches}
        by_clip = {h.photo.id: h for h in clip_hits}
        photos = self.catalog.photos_by_ids([pid for pid in order if pid not in by_clip])
        hits = []
        for pid in order:
            reasons = []
            if pid in by_text:
                reasons.append(text_reason(by_text[pid]))
            if pid in by_clip:
                reasons.append(by_clip[pid].reason)
            photo = by_clip[pid].photo if pid in by_clip else photos.get(pid)
            if photo is not None:
                hits.append(Hit(photo, scores[pid], "; ".join(reasons)))
        return hits
