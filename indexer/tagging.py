"""Suggested tags over a library: vocabulary, suggestions, review, learning, XMP export.

Everything works from the embeddings stored in the catalog: refreshing suggestions after a
vocabulary change, a review or an import never decodes a photo, and tag prompts are encoded
once per model and cached in the catalog (``tag_vectors``). The maths lives in
`models.tagging`; this module decides *what* to score and stores the outcome.

The review API (used by ``kezhao tags …`` and the web app):

- `TagService.pending_by_tag(selection)` — tags with pending suggestions and their counts;
- `TagService.pending(selection, tag, limit, offset)` — the suggestions themselves;
- `TagService.accept` / `reject` (photo ids and a tag), `accept_suggested` /
  `reject_suggested` (every photo currently suggested for a tag in a selection);
- `TagService.undo()` — the last decision batch, whatever it was.

Each decision is one undoable batch; a rejected tag never comes back for that photo; after
a decision the tag's classifier is retrained and suggestions refreshed (``learn=False``
defers that, e.g. while a user clicks through a page).

Refreshing is incremental (see `indexer.tag_calibration`): each tag's calibration over the
library is stored, so an index run scores only its new photos and a decision rescores only
its tag, on the photos where that tag's suggestions can change; the whole library is
recalibrated when its size moved by more than a tenth.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from indexer.catalog import Catalog, PhotoFilter
from indexer.errors import KezhaoError
from indexer.library import Library
from indexer.tag_calibration import (
    CalibrationPlan,
    Scorer,
    TagInputs,
    TagParams,
    calibrate_library,
    calibrate_tags,
    plan_calibration,
    rows_of,
)
from indexer.tag_records import (
    SOURCE_BUILTIN,
    SOURCE_EDITED,
    SOURCE_USER,
    LibraryCalibration,
    PendingCount,
    StoredTagModel,
    Suggestion,
    TagCalibrationRow,
    TagRow,
    TagVectorRow,
)
from indexer.xmp import XmpError, labels_for, sidecar_path, write_sidecar
from models.errors import ModelError
from models.tagging import (
    MAX_PER_PHOTO,
    MIN_POSITIVES,
    rank_like,
    select_suggestions,
    tag_text_vector,
    train_tag_model,
)
from models.vocabulary import Vocabulary, load_vocabulary, tag_problems

BACKGROUND_SAMPLE = 256
"""Unlabelled library photos used as weak negatives when training a tag's classifier."""
TEXT_BATCH = 64
VOCABULARY_META = "tag_vocabulary"


class TagError(KezhaoError):
    """A tag request that cannot be honoured (unknown tag, bad definition, bad photo)."""


class TextEncoder(Protocol):
    model_id: str

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


@dataclass
class RefreshReport:
    photos: int = 0
    tags: int = 0
    written: int = 0
    removed: int = 0
    encoded_prompts: int = 0
    recalibrated: list[str] = field(default_factory=list)
    recalibration: str | None = None  # why tags were recalibrated (None: stored ones held)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["skipped"] = [{"tag": k, "reason": r} for k, r in self.skipped]
        return data


@dataclass
class DecisionReport:
    state: str
    tags: list[str]
    changed: list[int]
    batch_id: int | None
    refresh: RefreshReport | None = None

    def as_dict(self) -> dict:
        return {
            "state": self.state, "tags": self.tags, "changed": self.changed,
            "batch_id": self.batch_id,
            "refresh": self.refresh.as_dict() if self.refresh else None,
        }


@dataclass(frozen=True)
class TagInfo:
    tag: TagRow
    accepted: int
    suggested: int
    rejected: int
    learned_from: tuple[int, int] | None  # (positives, negatives) of its classifier

    def as_dict(self) -> dict:
        data = self.tag.as_dict()
        data.update(accepted=self.accepted, suggested=self.suggested, rejected=self.rejected,
                    learned_from=list(self.learned_from) if self.learned_from else None)
        return data


@dataclass
class XmpReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["failed"] = [{"path": p, "message": m} for p, m in self.failed]
        return data


class TagService:
    """Tags of one library. Cheap to create; holds a cache of the embedding matrix so a
    review session does not reread every vector after each click."""

    def __init__(
        self,
        library: Library,
        encoder_factory: Callable[[], TextEncoder] | None = None,
        *,
        vocabulary: Vocabulary | None = None,
    ) -> None:
        self.library = library
        self.catalog: Catalog = library.catalog
        self._encoder_factory = encoder_factory
        self._vocabulary = vocabulary
        self._synced = False
        self._matrix_key: tuple[int, int] | None = None
        self._matrix: tuple[np.ndarray, np.ndarray] | None = None
        self._lock = threading.RLock()

    # ----------------------------------------------------------- vocabulary
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            self._vocabulary = load_vocabulary()
        return self._vocabulary

    def sync_vocabulary(self) -> list[str]:
        """Bring built-in tags in step with the vocabulary file; returns changed keys.

        New tags are added, changed ones updated, removed ones retired. Tags the user added
        or edited are left alone. Suggestions follow on the next refresh, because a tag's
        stored prompt vector no longer matches its prompts.
        """
        with self._lock:
            vocab = self.vocabulary()
            fingerprint = vocab.fingerprint()
            self._synced = True
            if self.catalog.get_meta(VOCABULARY_META) == fingerprint:
                return []
            existing = {t.key: t for t in self.catalog.tags()}
            changed: list[str] = []
            with self.catalog.transaction():
                for d in vocab.tags:
                    cur = existing.get(d.key)
                    if cur is not None and (cur.source != SOURCE_BUILTIN or (
                        cur.label_zh, cur.label_en, cur.prompts
                    ) == (d.label_zh, d.label_en, d.prompts)):
                        continue
                    self.catalog.save_tag(TagRow(
                        d.key, d.label_zh, d.label_en, d.prompts, SOURCE_BUILTIN,
                        cur.retired if cur else False, cur.threshold if cur else None, "",
                    ))
                    changed.append(d.key)
                gone = [k for k, t in existing.items()
                        if t.source == SOURCE_BUILTIN and not t.retired and vocab.get(k) is None]
                self.catalog.retire_tags(gone)
                self.catalog.set_meta(VOCABULARY_META, fingerprint)
            return changed + gone

    def _ensure_vocabulary(self) -> None:
        if not self._synced:
            self.sync_vocabulary()

    # ----------------------------------------------------------------- tags
    def list_tags(self, include_retired: bool = False) -> list[TagInfo]:
        self._ensure_vocabulary()
        counts = self.catalog.tag_state_counts()
        model_id = self.catalog.model_id()
        models = self.catalog.tag_models(model_id) if model_id else {}
        infos = []
        for tag in self.catalog.tags(include_retired=include_retired):
            c = counts.get(tag.key, {})
            m = models.get(tag.key)
            infos.append(TagInfo(tag, c.get("accepted", 0), c.get("suggested", 0),
                                 c.get("rejected", 0), (m.positives, m.negatives) if m else None))
        return infos

    def resolve_tag(self, ref: str, *, allow_retired: bool = False) -> TagRow:
        """A tag named by its key, Chinese label or English label."""
        self._ensure_vocabulary()
        ref = (ref or "").strip()
        found = self.catalog.find_tags(ref)
        if not found:
            raise TagError(f"no tag named {ref!r}; `kezhao tags list` shows them, "
                           "`kezhao tags add` creates one")
        exact = [t for t in found if t.key == ref]
        if not exact and len(found) > 1:
            raise TagError(f"{ref!r} names several tags ({', '.join(t.key for t in found)}); "
                           "use the key")
        tag = (exact or found)[0]
        if tag.retired and not allow_retired:
            raise TagError(f"tag {tag.key!r} is retired; bring it back with "
                           f"`kezhao tags edit {tag.key} --restore`")
        return tag

    def add_tag(
        self, key: str, label_zh: str, label_en: str, prompts: Sequence[str] = (),
        *, threshold: float | None = None, refresh: bool = True,
    ) -> TagRow:
        """A user tag: prompts for zero-shot suggestions, or none at all when it will be
        defined by example photos (accept a few, or `like(..., tag=key)`)."""
        self._ensure_vocabulary()
        prompts = [p.strip() for p in prompts]
        problems = tag_problems(key, label_zh, label_en, prompts, require_prompts=False)
        if problems:
            raise TagError(f"tag {key!r}: {'; '.join(problems)}")
        _check_threshold(threshold)
        if self.catalog.tag(key) is not None:
            raise TagError(f"tag {key!r} already exists; change it with `kezhao tags edit`")
        tag = TagRow(key, label_zh.strip(), label_en.strip(), tuple(prompts), SOURCE_USER,
                     False, threshold, "")
        self.catalog.save_tag(tag)
        if refresh and prompts:
            self.refresh()
        return self.catalog.tag(key) or tag

    def edit_tag(
        self, ref: str, *, label_zh: str | None = None, label_en: str | None = None,
        prompts: Sequence[str] | None = None, threshold: float | None = None,
        reset_threshold: bool = False, restore: bool = False, refresh: bool = True,
    ) -> TagRow:
        """Change a tag's labels, prompts or threshold, or bring a retired tag back. A
        built-in tag changed here is no longer updated from the vocabulary file."""
        tag = self.resolve_tag(ref, allow_retired=True)
        new_prompts = tuple(p.strip() for p in prompts) if prompts is not None else tag.prompts
        zh = label_zh.strip() if label_zh is not None else tag.label_zh
        en = label_en.strip() if label_en is not None else tag.label_en
        problems = tag_problems(tag.key, zh, en, list(new_prompts), require_prompts=False)
        if problems:
            raise TagError(f"tag {tag.key!r}: {'; '.join(problems)}")
        _check_threshold(threshold)
        definition_changed = (zh, en, new_prompts) != (tag.label_zh, tag.label_en, tag.prompts)
        source = SOURCE_EDITED if tag.source == SOURCE_BUILTIN and definition_changed \
            else tag.source
        new = TagRow(
            tag.key, zh, en, new_prompts, source, False if restore else tag.retired,
            None if reset_threshold else (threshold if threshold is not None else tag.threshold),
            "",
        )
        self.catalog.save_tag(new)
        if refresh and not new.retired:
            self.refresh()
        return self.catalog.tag(tag.key) or new

    def retire_tag(self, ref: str) -> TagRow:
        """No more suggestions for this tag; accepted ones stay on their photos (and keep
        filtering searches) and the tag can be restored."""
        tag = self.resolve_tag(ref, allow_retired=True)
        self.catalog.retire_tags([tag.key])
        return self.catalog.tag(tag.key) or tag

    # ---------------------------------------------------------- suggestions
    def refresh(
        self, photo_ids: Sequence[int] | None = None, *, recalibrate: bool = False
    ) -> RefreshReport:
        """Bring pending suggestions up to date from stored embeddings.

        `photo_ids` are photos just indexed (or none): they are scored against the stored
        calibration and nothing else is read — unless something it depends on moved. A tag
        whose prompts, reviews or classifier changed is recalibrated and rescored wherever
        its suggestions can change; when the library's size moved by more than
        RECALIBRATE_FRACTION since the last full calibration (or prompts were encoded, or a
        tag went away) every tag is recalibrated and every photo rescored, and the report
        says why. None rescores every photo; `recalibrate` forces a full calibration.
        Never decodes a photo, and never touches accepted or rejected tags.
        """
        with self._lock:
            self._ensure_vocabulary()
            model_id = self.catalog.model_id()
            report = RefreshReport()
            searchable = self.catalog.searchable_stamp()[1]
            if model_id is None or searchable == 0:
                return report
            texts, kept = self._text_vectors(model_id, report)
            inputs = self._inputs(model_id, texts, kept, report)
            stored = self.catalog.tag_calibrations(model_id)
            plan = plan_calibration(
                inputs, stored, self.catalog.library_calibration(), model_id, searchable,
                keep=kept, force=recalibrate)
            scope_tags = [i.key for i in inputs]
            if not plan.stale and photo_ids is not None:
                scorer = Scorer([TagParams.of(i, stored[i.key]) for i in inputs if i.scorable])
                ids, vectors = self.catalog.searchable_embeddings(photo_ids)
                self._write(scorer, ids, vectors, scope_tags, report, everything=False)
                return report
            ids, matrix = self._embedding_matrix()
            scorer, rows, library = self._calibrated(plan, inputs, stored, ids, matrix, model_id)
            report.recalibrated = [r.tag_key for r in rows]
            report.recalibration = plan.reason or (
                f"changed: {', '.join(plan.changed + plan.dropped)}" if plan.stale else None)
            everything = (photo_ids is None or plan.reason is not None or bool(plan.dropped)
                          or report.encoded_prompts > 0)
            if not everything:
                picked = np.union1d(self._affected(scorer, plan.changed, inputs, ids, matrix),
                                    rows_of(ids, photo_ids or ()))
                ids, matrix = ids[picked], matrix[picked]
            self._write(scorer, ids, matrix, scope_tags, report, everything=everything,
                        calibrations=rows, library=library, drop=plan.dropped)
            return report

    def retrain(self, tag_refs: Sequence[str] | None = None) -> list[str]:
        """Retrain the classifiers of these tags (all, by default) from their reviewed
        photos, without refreshing suggestions (`refresh` picks the change up). Returns
        the tags retrained."""
        with self._lock:
            self._ensure_vocabulary()
            model_id = self.catalog.model_id()
            if model_id is None:
                return []
            keys = ([self.resolve_tag(r, allow_retired=True).key for r in tag_refs]
                    if tag_refs is not None else [t.key for t in self.catalog.tags()])
            ids, matrix = self._embedding_matrix()
            examples = self.catalog.tag_examples()
            for key in keys:
                accepted, rejected = examples.get(key, ([], []))
                self._train(key, model_id, rows_of(ids, accepted), rows_of(ids, rejected),
                            matrix)
            return keys

    def learn(self, tag_refs: Sequence[str] | None = None) -> RefreshReport:
        """Retrain the classifiers of these tags (all, by default), then refresh: every
        photo when all tags were retrained; after a review of a few tags, only those tags,
        on the photos where their suggestions can change — one click in the review screen
        does not rescore the library."""
        with self._lock:
            if self.catalog.model_id() is None:
                return RefreshReport()
            self.retrain(tag_refs)
            return self.refresh(None if tag_refs is None else [])

    def rank(self, tag_ref: str, photo_ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """Every (or these) searchable photo with its current probability for a tag, most
        probable first, whatever its review state: the ordering suggestions come from."""
        with self._lock:
            tag = self.resolve_tag(tag_ref)
            model_id = self.catalog.model_id()
            searchable = self.catalog.searchable_stamp()[1]
            if model_id is None or searchable == 0:
                return []
            report = RefreshReport()
            texts, kept = self._text_vectors(model_id, report)
            inputs = self._inputs(model_id, texts, kept, report)
            if not any(i.key == tag.key and i.scorable for i in inputs):
                return []
            stored = self.catalog.tag_calibrations(model_id)
            plan = plan_calibration(
                inputs, stored, self.catalog.library_calibration(), model_id, searchable,
                keep=kept)
            ids, matrix = self._embedding_matrix()
            if plan.reason is None:
                inputs = [i for i in inputs if i.key == tag.key]
            scorer, _rows, _library = self._calibrated(plan, inputs, stored, ids, matrix,
                                                       model_id)
            scorer = scorer.subset([tag.key])
            if photo_ids is not None:
                keep = np.isin(ids, np.asarray(list(photo_ids), dtype=np.int64))
                ids, matrix = ids[keep], matrix[keep]
            probs = scorer.probabilities(matrix)[:, 0] if len(ids) else np.zeros(0)
            order = np.argsort(-probs, kind="stable")
            return [(int(ids[i]), float(probs[i])) for i in order]

    def like(
        self, example_ids: Sequence[int], selection: PhotoFilter | None = None, k: int = 20,
        negative_ids: Sequence[int] = (),
    ) -> list[tuple[int, float]]:
        """"More like these": photos ranked by the classifier a tag would learn from these
        examples (and counter-examples) against the rest of the library — stored vectors
        only; the examples themselves are left out."""
        self._check_selection(selection)
        ex_ids, examples = self.catalog.embeddings_for(example_ids)
        missing = sorted(set(int(i) for i in example_ids) - set(ex_ids.tolist()))
        if missing:
            raise TagError(f"no indexed photo with id {missing[0]}")
        if not len(ex_ids):
            raise TagError("give at least one example photo")
        _, negatives = self.catalog.embeddings_for(negative_ids)
        ids, matrix = self._embedding_matrix()
        keep = ~np.isin(ids, ex_ids)
        if selection is not None and not selection.is_empty():
            keep &= np.isin(ids, self.catalog.photo_ids_matching(selection))
        all_ids, everything = ids, matrix
        ids, matrix = ids[keep], matrix[keep]
        if not len(ids):
            return []
        background = everything[~np.isin(all_ids, ex_ids)]
        background = background[np.random.default_rng(0).permutation(len(background))[
            :BACKGROUND_SAMPLE]]
        scores = rank_like(examples, matrix, negatives if len(negatives) else None,
                           background)
        order = np.argsort(-scores, kind="stable")[: max(1, int(k))]
        return [(int(ids[i]), float(scores[i])) for i in order]

    def tag_from_examples(
        self, key: str, example_ids: Sequence[int], *, label_zh: str | None = None,
        label_en: str | None = None, learn: bool = True,
    ) -> DecisionReport:
        """"More like these" made permanent: create (when new) a tag defined only by
        example photos and accept them as its first examples; suggestions for the rest of
        the library follow, and every later review sharpens them."""
        with self._lock:
            self._ensure_vocabulary()
            if self.catalog.tag(key) is None:
                self.add_tag(key, label_zh or key, label_en or key, (), refresh=False)
            return self.accept(example_ids, key, learn=learn)

    # --------------------------------------------------------------- review
    def pending(
        self, selection: PhotoFilter | None = None, tag: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[Suggestion]:
        """Suggestions waiting for a decision, grouped by tag, best first; trashed or
        missing photos never appear."""
        self._ensure_vocabulary()
        self._check_selection(selection)
        key = self.resolve_tag(tag).key if tag else None
        return self.catalog.pending_suggestions(selection, key, limit, offset)

    def pending_by_tag(self, selection: PhotoFilter | None = None) -> list[PendingCount]:
        self._ensure_vocabulary()
        self._check_selection(selection)
        return self.catalog.pending_counts(selection)

    def accept(self, photo_ids: Sequence[int], tag: str, *, learn: bool = True) -> DecisionReport:
        return self._decide(photo_ids, tag, "accepted", learn)

    def reject(self, photo_ids: Sequence[int], tag: str, *, learn: bool = True) -> DecisionReport:
        return self._decide(photo_ids, tag, "rejected", learn)

    def accept_suggested(
        self, tag: str, selection: PhotoFilter | None = None, *, learn: bool = True
    ) -> DecisionReport:
        """Accept every photo currently suggested for `tag` in the selection."""
        return self._decide_suggested(tag, selection, "accepted", learn)

    def reject_suggested(
        self, tag: str, selection: PhotoFilter | None = None, *, learn: bool = True
    ) -> DecisionReport:
        return self._decide_suggested(tag, selection, "rejected", learn)

    def undo(self, *, learn: bool = True) -> DecisionReport:
        """Undo the last decision batch; `batch_id` is None when there was nothing to undo."""
        with self._lock:
            undone = self.catalog.undo_tag_batch()
            if undone is None:
                return DecisionReport("undone", [], [], None)
            batch, keys, photo_ids = undone
            refresh = self.learn(keys) if learn else None
            return DecisionReport("undone", keys, photo_ids, batch, refresh)

    # ----------------------------------------------------------------- xmp
    def export_xmp(
        self, selection: PhotoFilter | None = None, dest: Path | None = None, *,
        language: str = "both", full_names: bool = False,
    ) -> XmpReport:
        """Write accepted tags to XMP sidecars beside the photos (or under `dest`,
        mirroring each photo's place under its indexed folder). Image files are never
        written; photos whose tags were all removed get their kezhao keywords removed."""
        self._check_selection(selection)
        report = XmpReport()
        dest_dir = Path(dest).expanduser().resolve() if dest is not None else None
        for row in self.catalog.photos_for_export(selection):
            photo = Path(row.path)
            target = sidecar_path(photo, full_name=full_names)
            if dest_dir is not None:
                target = dest_dir / _relative_to_root(target, row.root)
            try:
                if target.resolve() == photo.resolve():
                    raise XmpError(f"sidecar path {target} would be the photo itself")
                outcome = write_sidecar(target, labels_for(row.tags, language))
            except (XmpError, OSError) as err:
                report.failed.append((str(target), str(err)))
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
        return report

    # ------------------------------------------------------------ internals
    def _decide(
        self, photo_ids: Sequence[int], tag_ref: str, state: str, learn: bool
    ) -> DecisionReport:
        with self._lock:
            tag = self.resolve_tag(tag_ref)
            ids = [int(i) for i in dict.fromkeys(photo_ids)]
            if not ids:
                raise TagError("name at least one photo")
            statuses = self.catalog.photo_statuses(ids)
            for photo_id in ids:
                status = statuses.get(photo_id)
                if status is None:
                    raise TagError(f"no photo with id {photo_id}")
                if status != "ok":
                    raise TagError(f"photo #{photo_id} is {status}; only photos in the "
                                   "library can be tagged")
            batch, changed = self.catalog.decide_tags(ids, tag.key, state)
            refresh = self.learn([tag.key]) if learn and changed else None
            return DecisionReport(state, [tag.key], changed, batch, refresh)

    def _decide_suggested(
        self, tag_ref: str, selection: PhotoFilter | None, state: str, learn: bool
    ) -> DecisionReport:
        with self._lock:
            tag = self.resolve_tag(tag_ref)
            self._check_selection(selection)
            ids = self.catalog.suggested_photo_ids(tag.key, selection)
            if not ids:
                return DecisionReport(state, [tag.key], [], None)
            return self._decide(ids, tag.key, state, learn)

    def _check_selection(self, selection: PhotoFilter | None) -> None:
        if selection is not None and selection.client is not None and not (
            self.catalog.client_exists(selection.client)
        ):
            known = ", ".join(c.name for c in self.catalog.clients()[:10]) or "none yet"
            raise TagError(f"no client named {selection.client!r} (known clients: {known})")

    def _embedding_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        key = self.catalog.searchable_stamp()
        if self._matrix is None or self._matrix_key != key:
            chunks = list(self.catalog.iter_embeddings())
            if chunks:
                ids = np.concatenate([c[0] for c in chunks])
                matrix = np.vstack([c[1] for c in chunks]).astype(np.float32, copy=False)
            else:
                ids, matrix = np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
            self._matrix, self._matrix_key = (ids, matrix), key
        return self._matrix

    def _text_vectors(
        self, model_id: str, report: RefreshReport
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """Prompt-ensemble vectors of active tags, from the catalog's cache, encoding only
        tags whose prompts are new or changed. Also returns tags that need encoding but
        could not be (no model): their old suggestions are kept as they are."""
        tags = [t for t in self.catalog.tags(include_retired=False) if t.prompts]
        stored = self.catalog.tag_vectors(model_id)
        vectors: dict[str, np.ndarray] = {}
        to_encode: list[TagRow] = []
        for tag in tags:
            row = stored.get(tag.key)
            if row is not None and row.source_sha == _prompts_sha(tag.prompts):
                vectors[tag.key] = row.vector
            else:
                to_encode.append(tag)
        if not to_encode:
            return vectors, []
        if self._encoder_factory is None:
            report.skipped.extend((t.key, "prompts not encoded yet: no model loaded")
                                  for t in to_encode)
            return vectors, [t.key for t in to_encode]
        encoder = self._encoder_factory()
        if encoder.model_id != model_id:
            raise TagError(f"this library was indexed with {model_id}, but the model in use "
                           f"is {encoder.model_id}; use the same --model/--checkpoint")
        prompts = list(dict.fromkeys(p for t in to_encode for p in t.prompts))
        encoded: dict[str, np.ndarray] = {}
        for start in range(0, len(prompts), TEXT_BATCH):
            batch = prompts[start : start + TEXT_BATCH]
            encoded.update(zip(batch, np.asarray(encoder.encode_texts(batch)), strict=True))
        report.encoded_prompts += len(prompts)
        rows = [
            TagVectorRow(t.key, model_id, _prompts_sha(t.prompts),
                         tag_text_vector(np.stack([encoded[p] for p in t.prompts])))
            for t in to_encode
        ]
        self.catalog.save_tag_vectors(rows)
        vectors.update((r.tag_key, r.vector) for r in rows)
        return vectors, []

    def _inputs(
        self, model_id: str, texts: dict[str, np.ndarray], kept: Sequence[str],
        report: RefreshReport,
    ) -> list[TagInputs]:
        """What every active tag's scores are made from now (tags whose new prompts could
        not be encoded are left out: their old suggestions stay as they are)."""
        examples = self.catalog.tag_examples()
        models = self.catalog.tag_models(model_id)
        out = []
        for tag in self.catalog.tags(include_retired=False):
            if tag.key in kept:
                continue
            accepted, rejected = examples.get(tag.key, ([], []))
            inputs = TagInputs(tag, texts.get(tag.key), tuple(accepted), tuple(rejected),
                               models.get(tag.key))
            if not inputs.scorable:
                report.skipped.append((tag.key, "no prompts and no accepted examples yet"))
            out.append(inputs)
        return out

    def _calibrated(
        self, plan: CalibrationPlan, inputs: Sequence[TagInputs],
        stored: dict[str, TagCalibrationRow], ids: np.ndarray, matrix: np.ndarray,
        model_id: str,
    ) -> tuple[Scorer, list[TagCalibrationRow], LibraryCalibration | None]:
        """A scorer for the scorable tags, recalibrating what the plan says is stale;
        also returns what was recalibrated, for the caller to store."""
        library = None
        if plan.reason is not None:
            rows, library = calibrate_library(inputs, ids, matrix, model_id)
        else:
            stored_library = self.catalog.library_calibration()
            assert stored_library is not None  # a plan without a reason had one
            changed = [i for i in inputs if i.key in plan.changed]
            rows = calibrate_tags(changed, ids, matrix, stored_library, model_id)
        current = {**stored, **{r.tag_key: r for r in rows}}
        scorer = Scorer([TagParams.of(i, current[i.key]) for i in inputs if i.scorable])
        return scorer, rows, library

    def _affected(
        self, scorer: Scorer, changed: Sequence[str], inputs: Sequence[TagInputs],
        ids: np.ndarray, matrix: np.ndarray,
    ) -> np.ndarray:
        """Rows whose suggestions can change when only the `changed` tags' scores did: a
        photo where such a tag was neither selected before (it is suggested, accepted or
        rejected there now) nor clears its threshold now keeps every other suggestion
        too, because the per-photo cap only ever compares tags that clear theirs."""
        if not changed:
            return np.zeros(0, dtype=np.int64)
        sub = scorer.subset(changed)
        hits = sub.probabilities(matrix) >= sub.thresholds()[None, :]
        before: list[int] = []
        decided = {i.key: i.accepted + i.rejected for i in inputs}
        for key in sub.keys:
            before.extend(self.catalog.suggested_photo_ids(key))
            before.extend(decided.get(key, ()))
        return np.union1d(np.flatnonzero(hits.any(axis=1)), rows_of(ids, before))

    def _write(
        self, scorer: Scorer, ids: np.ndarray, vectors: np.ndarray, scope_tags: list[str],
        report: RefreshReport, *, everything: bool,
        calibrations: Sequence[TagCalibrationRow] = (),
        library: LibraryCalibration | None = None, drop: Sequence[str] = (),
    ) -> None:
        """Score these photos and make their pending suggestions exactly that, storing the
        calibration they were scored with in the same transaction, so the two never
        disagree after a crash."""
        suggestions: list[tuple[int, str, float, str]] = []
        if scorer.params and len(ids):
            probs = scorer.probabilities(vectors)
            r, j = np.nonzero(select_suggestions(probs, scorer.thresholds(), MAX_PER_PHOTO))
            keys, sources = scorer.keys, scorer.sources()
            suggestions = list(zip(
                ids[r].tolist(), [keys[c] for c in j.tolist()], probs[r, j].tolist(),
                [sources[c] for c in j.tolist()], strict=True,
            ))
        with self.catalog.transaction():
            report.written, report.removed = self.catalog.replace_suggestions(
                None if everything else [int(i) for i in ids], scope_tags, suggestions)
            if calibrations or library is not None or drop:
                self.catalog.save_tag_calibrations(calibrations, library, drop=drop)
        report.photos, report.tags = len(ids), len(scorer.params)

    def _train(
        self, key: str, model_id: str, pos_rows: np.ndarray, neg_rows: np.ndarray,
        matrix: np.ndarray,
    ) -> None:
        """Train one tag's classifier from the matrix rows of its reviewed photos."""
        if len(pos_rows) < MIN_POSITIVES:
            self.catalog.delete_tag_model(key)
            return
        labelled = np.zeros(len(matrix), dtype=bool)
        labelled[pos_rows] = True
        labelled[neg_rows] = True
        pool = np.flatnonzero(~labelled)
        seed = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)
        background = np.random.default_rng(seed).permutation(pool)[:BACKGROUND_SAMPLE]
        if len(neg_rows) + len(background) == 0:
            self.catalog.delete_tag_model(key)
            return
        model = train_tag_model(matrix[pos_rows], matrix[neg_rows], matrix[background])
        self.catalog.save_tag_model(StoredTagModel(
            key, model_id, model.weights, model.bias, model.positives, model.negatives, ""))


def _prompts_sha(prompts: Sequence[str]) -> str:
    text = json.dumps(list(prompts), ensure_ascii=False)
    return "prompts:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise TagError(f"threshold must be between 0 and 1 (a probability), not {threshold}")


def _relative_to_root(path: Path, root: str | None) -> Path:
    """A sidecar's place under an export folder: <indexed folder name>/<path inside it>."""
    if root:
        try:
            return Path(Path(root).name) / path.relative_to(root)
        except ValueError:
            pass
    return Path(path.name)


def suggest_after_indexing(
    library: Library, encoder: object, photo_ids: Sequence[int]
) -> RefreshReport | None:
    """The indexing pipeline's hook: suggestions for the photos just indexed (and for every
    photo when the vocabulary or the library's size moved enough to recalibrate).

    Tagging must never undo an indexing run that already succeeded, so a failure here is
    returned in the report instead of raised; `kezhao tags refresh` shows it again.
    """
    if not hasattr(encoder, "encode_texts"):
        return None
    service = TagService(library, lambda: encoder)  # type: ignore[return-value]
    try:
        return service.refresh(list(photo_ids))
    except (KezhaoError, ModelError) as err:
        return RefreshReport(error=str(err))
