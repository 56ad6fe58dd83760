"""Suggested tags over a real library: computed at index time, refreshed from stored
embeddings only, reviewed (accept, reject, undo, in bulk), learned from, and exported to
XMP sidecars that an independent reader understands.

The tiny test model has NO semantics: which tag it suggests for a photo means nothing.
These tests check the mechanics (what is stored, what comes back, what never comes back);
the learning test uses synthetic visual classes its random features can tell apart.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from benchmarks.tag_learning import make_synthetic_classes, run_benchmark
from indexer.catalog import PhotoFilter
from indexer.pipeline import index_paths
from indexer.tagging import TagError, TagService
from models.tagging import MAX_PER_PHOTO
from models.vocabulary import TagDefinition, Vocabulary, load_vocabulary
from tests.conftest import write_photo

EXIFTOOL = shutil.which("exiftool")


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i in range(8):
        write_photo(root / "张三" / "展会" / f"z{i}.jpg", seed=i, size=(96, 72))
    for i in range(6):
        write_photo(root / "李四" / f"l{i}.jpg", seed=100 + i, size=(96, 72))
    return root


@pytest.fixture
def indexed(library, photos, tiny_encoder):
    index_paths(library, tiny_encoder, [photos], workers=2)
    return library


def small_vocabulary(**changes: tuple[str, ...]) -> Vocabulary:
    """Three built-in tags (optionally with other prompts) plus any new ones."""
    builtin = load_vocabulary()
    tags = []
    for key in ("meeting", "product_showcase", "document"):
        d = builtin.get(key)
        tags.append(TagDefinition(key, d.label_zh, d.label_en, changes.pop(key, d.prompts)))
    for key, prompts in changes.items():
        tags.append(TagDefinition(key, key, key.replace("_", " "), prompts))
    return Vocabulary(version=1, tags=tuple(tags))


def ids_of(library, client: str) -> list[int]:
    return sorted(p.id for p in library.catalog.list_photos(PhotoFilter(client=client)))


@pytest.fixture
def service(indexed, counting_encoder) -> TagService:
    """Three tags; 'meeting' suggested for every photo (threshold near 0)."""
    svc = TagService(indexed, lambda: counting_encoder, vocabulary=small_vocabulary())
    svc.edit_tag("meeting", threshold=0.0001)
    return svc


def pending_ids(svc: TagService, tag: str, selection: PhotoFilter | None = None) -> list[int]:
    return sorted(s.photo_id for s in svc.pending(selection, tag, limit=1000))


# ------------------------------------------------------------- suggestions
def test_suggestions_are_computed_at_index_time(indexed):
    svc = TagService(indexed)
    pending = svc.pending(limit=1000)
    assert pending, "indexing should leave suggestions to review"
    assert {s.source for s in pending} == {"zero-shot"}
    assert all(0.5 <= s.score <= 1.0 for s in pending)
    per_photo: dict[int, int] = {}
    for s in pending:
        per_photo[s.photo_id] = per_photo.get(s.photo_id, 0) + 1
    assert max(per_photo.values()) <= MAX_PER_PHOTO
    assert len(svc.list_tags()) >= 40
    counts = svc.pending_by_tag()
    assert sum(c.count for c in counts) == len(pending)
    assert counts == sorted(counts, key=lambda c: (-c.count, c.tag_key))


def test_vocabulary_change_refreshes_suggestions_without_decoding(indexed, counting_encoder,
                                                                  monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("a photo was decoded")

    monkeypatch.setattr("indexer.pipeline.decode_photo", no_decoding)
    monkeypatch.setattr("indexer.decode.decode_photo", no_decoding)
    before = TagService(indexed).rank("document")

    new_prompts = ("a photo of a contract on a desk", "a scanned page")
    vocab = small_vocabulary(document=new_prompts, sample_rack=("a rack of garment samples",))
    svc = TagService(indexed, lambda: counting_encoder, vocabulary=vocab)
    report = svc.refresh()

    assert counting_encoder.images_encoded == 0
    # Only the new and the changed tag were encoded: 'meeting' came from the catalog cache.
    assert report.encoded_prompts == 3
    assert report.photos == 14 and report.tags == 4
    after = svc.rank("document")
    assert [p for _, p in after] != [p for _, p in before]
    assert [t.tag.key for t in svc.list_tags()] == sorted(
        ["meeting", "product_showcase", "document", "sample_rack"])
    assert {s.tag_key for s in svc.pending(limit=1000)} <= {
        "meeting", "product_showcase", "document", "sample_rack"}
    assert svc.resolve_tag("award_ceremony", allow_retired=True).retired

    again = TagService(indexed, lambda: counting_encoder, vocabulary=vocab).refresh()
    assert again.encoded_prompts == 0 and counting_encoder.images_encoded == 0


def test_new_photos_get_suggestions_from_the_indexing_run(indexed, photos, service,
                                                          counting_encoder):
    write_photo(photos / "李四" / "new.jpg", seed=999, size=(96, 72))
    # The pipeline uses the built-in vocabulary; keep only 'meeting' so it is certain.
    for info in TagService(indexed).list_tags():
        if info.tag.key != "meeting":
            TagService(indexed).retire_tag(info.tag.key)
    index_paths(indexed, counting_encoder, [photos], workers=2)
    new_id = indexed.catalog.photo_id_for_path(str((photos / "李四" / "new.jpg").resolve()))
    assert counting_encoder.images_encoded == 1
    assert new_id in pending_ids(service, "meeting")


# ------------------------------------------------------------------ review
def test_accept_reject_and_undo(indexed, service):
    a, b, c = ids_of(indexed, "张三")[:3]
    accepted = service.accept([a], "会议")  # a label names the tag too
    assert accepted.changed == [a] and accepted.tags == ["meeting"]
    assert indexed.catalog.get_photo(a).tags == ("meeting",)
    assert [p.id for p in indexed.catalog.list_photos(PhotoFilter(tag="会议"))] == [a]
    assert [p.id for p in indexed.catalog.list_photos(PhotoFilter(tag="meeting"))] == [a]

    score_b = next(s.score for s in service.pending(tag="meeting", limit=1000)
                   if s.photo_id == b)
    service.reject([b], "meeting", learn=False)
    assert b not in pending_ids(service, "meeting")
    assert a not in pending_ids(service, "meeting") and c in pending_ids(service, "meeting")

    undone = service.undo(learn=False)
    assert undone.changed == [b] and undone.state == "undone"
    restored = {s.photo_id: s for s in service.pending(tag="meeting", limit=1000)}
    assert restored[b].score == pytest.approx(score_b)  # exactly as it was
    service.undo()
    assert indexed.catalog.get_photo(a).tags == ()
    assert a in pending_ids(service, "meeting")
    assert service.undo().batch_id is None


def test_a_rejected_tag_never_comes_back(indexed, photos, service, counting_encoder):
    b = ids_of(indexed, "张三")[1]
    service.reject([b], "meeting")
    service.edit_tag("meeting", prompts=["a photo of people around a table"])
    service.learn()
    # Moving the file keeps the photo (and its decisions) in the catalog.
    old = photos / "张三" / "展会" / "z1.jpg"
    old.rename(photos / "张三" / "z1-moved.jpg")
    index_paths(indexed, counting_encoder, [photos], workers=2)
    assert indexed.catalog.photo_id_for_path(str((photos / "张三" / "z1-moved.jpg").resolve())) == b
    service.refresh()
    assert b not in pending_ids(service, "meeting")
    assert indexed.catalog.tag_states([b], "meeting")[b].state == "rejected"


def test_accept_everything_suggested_for_a_tag_within_one_client(indexed, service):
    zhang, li = ids_of(indexed, "张三"), ids_of(indexed, "李四")
    report = service.accept_suggested("meeting", PhotoFilter(client="张三"), learn=False)
    assert sorted(report.changed) == zhang
    assert pending_ids(service, "meeting") == li
    assert {p.id for p in indexed.catalog.list_photos(PhotoFilter(tag="meeting"))} == set(zhang)
    assert service.undo(learn=False).changed and pending_ids(service, "meeting") == sorted(
        zhang + li)
    rejected = service.reject_suggested("meeting", PhotoFilter(client="李四"))
    assert sorted(rejected.changed) == li
    assert pending_ids(service, "meeting", PhotoFilter(client="李四")) == []


def test_missing_or_trashed_photos_leave_the_review(indexed, service):
    gone = ids_of(indexed, "李四")[0]
    indexed.catalog.mark_missing([gone])
    assert gone not in pending_ids(service, "meeting")
    assert all(c.count <= 13 for c in service.pending_by_tag())
    with pytest.raises(TagError, match="missing"):
        service.accept([gone], "meeting")


def test_bad_requests_are_clear_errors(indexed, service):
    with pytest.raises(TagError, match="no tag named"):
        service.pending(tag="无此标签")
    with pytest.raises(TagError, match="no client named"):
        service.pending(PhotoFilter(client="王五"))
    with pytest.raises(TagError, match="key must be"):
        service.add_tag("two words", "样衣", "sample garment")
    with pytest.raises(TagError, match="already exists"):
        service.add_tag("meeting", "会议", "meeting")
    with pytest.raises(TagError, match="threshold"):
        service.edit_tag("meeting", threshold=1.5)
    with pytest.raises(TagError, match="no photo with id"):
        service.accept([999999], "meeting")
    service.retire_tag("meeting")
    assert pending_ids(service, "document") is not None
    with pytest.raises(TagError, match="retired"):
        service.accept(ids_of(indexed, "张三")[:1], "meeting")
    assert service.edit_tag("meeting", restore=True).retired is False


# ---------------------------------------------------------------- learning
@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    return make_synthetic_classes(tmp_path / "classes", per_class=24, seed=0)


def test_learned_tagger_beats_the_zero_shot_prior_on_held_out_photos(synthetic, tiny_encoder,
                                                                     tmp_path):
    results = run_benchmark(synthetic, tiny_encoder, tmp_path / "lib", rounds=4, k=5,
                            review_k=6)
    zero_shot, learned = results[0].precision, results[-1].precision
    assert learned >= zero_shot + 0.25, [r.precision for r in results]
    assert results[-1].accepted > 0


def test_a_tag_defined_only_by_example_photos(synthetic, tiny_encoder, tmp_path):
    from indexer.library import open_library

    with open_library(tmp_path / "lib") as lib:
        index_paths(lib, tiny_encoder, [synthetic], workers=2)
        svc = TagService(lib, lambda: tiny_encoder, vocabulary=Vocabulary(1, ()))
        label = {}
        for folder in synthetic.iterdir():
            for f in folder.iterdir():
                label[lib.catalog.photo_id_for_path(str(f.resolve()))] = folder.name
        reds = sorted(i for i, name in label.items() if name == "red_disc")
        examples = reds[:3]

        liked = svc.like(examples, k=8)
        assert not set(examples) & {i for i, _ in liked}
        assert sum(label[i] == "red_disc" for i, _ in liked) >= 5

        report = svc.tag_from_examples("red", examples, label_zh="红圆", label_en="red disc")
        assert sorted(report.changed) == examples
        tag = svc.resolve_tag("红圆")
        assert tag.prompts == () and tag.source == "user"
        ranked = [i for i, _ in svc.rank("red") if i not in examples][:8]
        assert sum(label[i] == "red_disc" for i in ranked) >= 5
        pending = svc.pending(tag="red", limit=100)
        assert pending and {s.source for s in pending} == {"learned"}
        info = next(i for i in svc.list_tags() if i.tag.key == "red")
        assert info.accepted == 3 and info.learned_from == (3, 0)


# --------------------------------------------------------------------- xmp
def exif_keywords(path: Path) -> tuple[list[str], list[str]]:
    out = subprocess.run([EXIFTOOL, "-j", "-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject",
                          str(path)], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)[0]

    def as_list(value) -> list[str]:
        return [] if value is None else [value] if isinstance(value, str) else list(value)

    return as_list(data.get("Subject")), as_list(data.get("HierarchicalSubject"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool not installed (scripts/ensure-test-deps.sh)")
def test_xmp_sidecars_round_trip_through_exiftool(indexed, photos, service, tmp_path):
    a, b = ids_of(indexed, "张三")[:2]
    photo_a = Path(indexed.catalog.get_photo(a).path)
    before = digest(photo_a)
    service.accept([a, b], "meeting", learn=False)
    service.accept([a], "document", learn=False)

    report = service.export_xmp()
    assert (report.created, report.updated, report.failed) == (2, 0, [])
    sidecar = photo_a.with_suffix(".xmp")
    subjects, hierarchy = exif_keywords(sidecar)
    assert sorted(subjects) == sorted(["会议", "meeting", "文件", "document"])
    assert sorted(hierarchy) == sorted(["kezhao|会议", "kezhao|meeting", "kezhao|文件",
                                        "kezhao|document"])
    assert digest(photo_a) == before

    # Another tool adds its own keyword and a rating; re-running keeps them, adds nothing twice.
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-XMP-dc:Subject+=客户精选",
                    "-XMP-xmp:Rating=4", str(sidecar)], check=True)
    again = service.export_xmp()
    assert (again.created, again.updated) == (0, 0) and again.unchanged == 14
    subjects, _ = exif_keywords(sidecar)
    assert sorted(subjects) == sorted(["会议", "meeting", "文件", "document", "客户精选"])

    service.undo(learn=False)  # a loses 'document'
    assert service.export_xmp(language="zh").updated == 2
    subjects, hierarchy = exif_keywords(sidecar)
    assert sorted(subjects) == sorted(["会议", "客户精选"]) and hierarchy == ["kezhao|会议"]
    rating = subprocess.run([EXIFTOOL, "-s3", "-XMP-xmp:Rating", str(sidecar)],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert rating == "4"
    assert digest(photo_a) == before

    out = tmp_path / "export"
    folder = service.export_xmp(PhotoFilter(client="张三"), out)
    assert folder.created == 2
    mirrored = out / photos.name / photo_a.relative_to(photos).with_suffix(".xmp")
    assert exif_keywords(mirrored)[0] == ["会议", "meeting"]


def test_sidecar_names_never_mix_two_photos(tmp_path, tiny_encoder, library):
    root = tmp_path / "p"
    write_photo(root / "IMG_1.jpg", seed=1, size=(96, 72))
    write_photo(root / "IMG_1.png", seed=2, size=(96, 72))
    write_photo(root / "IMG_2.jpg", seed=3, size=(96, 72))
    index_paths(library, tiny_encoder, [root], workers=2)
    svc = TagService(library, lambda: tiny_encoder, vocabulary=small_vocabulary())
    ids = sorted(library.catalog.photo_ids_matching(PhotoFilter()).tolist())
    svc.accept(ids, "meeting", learn=False)
    assert svc.export_xmp().created == 3
    names = sorted(p.name for p in root.glob("*.xmp"))
    assert names == ["IMG_1.jpg.xmp", "IMG_1.png.xmp", "IMG_2.xmp"]
    assert svc.export_xmp(full_names=True).created == 1  # IMG_2.jpg.xmp
