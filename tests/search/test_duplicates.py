"""Duplicate groups and keepers. Indexed with the tiny test model, whose embeddings have no
semantics (every pair of photos looks alike to it), so in these libraries the perceptual
hash is what tells copies from distinct photos; the grouping maths is also checked on
synthetic vectors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexer.catalog import PhotoFilter
from indexer.pipeline import index_paths
from indexer.tag_records import TagRow
from search.cleanup import CleanupError, find_duplicates, poor_photos, resolve_group
from search.duplicates import (
    STRICTNESS,
    DuplicateError,
    complete_linkage_groups,
    find_groups,
    group_id,
    hamming_many,
    parse_group_id,
    similar_pairs,
    strictness,
)
from tests.conftest import write_photo
from tests.variants import VARIANTS, save_burst_frame, save_original, save_variant


@pytest.fixture
def planted(tmp_path, library, tiny_encoder):
    """张三: two camera originals with every kind of copy, plus distinct photos; 李四: a
    byte-identical copy of one original and a photo of their own."""
    root = tmp_path / "photos"
    originals = [save_original(root / "张三" / "会议" / f"orig{k}.jpg", seed=k) for k in (1, 2)]
    for original in originals:
        for kind in VARIANTS:
            save_variant(original, kind, root / "张三" / "导出")
    for seed in range(100, 106):
        write_photo(root / "张三" / "会议" / f"other{seed}.jpg", seed=seed, size=(640, 480))
    save_variant(originals[0], "exact", root / "李四", stem="from_zhangsan")
    write_photo(root / "李四" / "own.jpg", seed=200, size=(640, 480))
    index_paths(library, tiny_encoder, [root])
    return root


def _names(group) -> set[str]:
    return {Path(m.photo.path).name for m in group.members}


def _keeper_name(group) -> str:
    return Path(next(m.photo.path for m in group.members if m.keeper)).name


def test_planted_copies_group_with_their_original_and_nothing_else(planted, library):
    groups = find_duplicates(library)  # near, per client
    by_original = {_keeper_name(g): _names(g) for g in groups}
    for k in (1, 2):
        assert by_original[f"orig{k}.jpg"] == {f"orig{k}.jpg"} | {
            f"orig{k}_{v}.{'png' if v == 'png' else 'jpg'}" for v in VARIANTS
        }
    assert len(groups) == 2
    grouped = set().union(*by_original.values())
    assert not any(name.startswith(("other", "own", "from_")) for name in grouped)


def test_keeper_is_the_camera_original_with_one_line_reasons(planted, library):
    group = next(g for g in find_duplicates(library) if "orig1.jpg" in _names(g))
    reasons = {Path(m.photo.path).name: m.reason for m in group.members}
    assert _keeper_name(group) == "orig1.jpg"
    assert group.members[0].keeper and group.keeper_id == group.members[0].photo.id
    assert "largest" in reasons["orig1.jpg"] and "camera original" in reasons["orig1.jpg"]
    assert "1/4 resolution" in reasons["orig1_half.jpg"]
    assert "re-saved as PNG" in reasons["orig1_png.png"]
    assert "re-compressed" in reasons["orig1_q60.jpg"]
    assert "cropped" in reasons["orig1_crop5.jpg"]
    assert reasons["orig1_blurred.jpg"].startswith("blurry: sharpness ")
    assert all("\n" not in r and r for r in reasons.values())


def test_blurred_copy_is_flagged_blurry_and_never_kept(planted, library):
    for level in ("near", "similar"):
        for group in find_duplicates(library, level=level):
            blurred = [m for m in group.members if "blurred" in Path(m.photo.path).name]
            assert blurred and all(m.blurry and not m.keeper for m in blurred)
    listed = [Path(p.photo.path).name for p in poor_photos(library, "blurry")]
    assert {"orig1_blurred.jpg", "orig2_blurred.jpg"} <= set(listed)
    assert "orig1.jpg" not in listed and "other100.jpg" not in listed


def test_blurred_copy_loses_even_when_larger(tmp_path, library, tiny_encoder):
    root = tmp_path / "photos" / "王五"
    original = save_original(root / "a.jpg", seed=7, size=(480, 360))
    from PIL import Image, ImageFilter

    with Image.open(original) as im:
        big = im.resize((960, 720)).filter(ImageFilter.GaussianBlur(6))
        big.save(root / "a_big_blurred.jpg", quality=95, exif=im.getexif().tobytes())
    index_paths(library, tiny_encoder, [root.parent])
    [group] = find_duplicates(library)
    assert _keeper_name(group) == "a.jpg"
    blurred = next(m for m in group.members if not m.keeper)
    assert blurred.blurry and "blurry" in blurred.reason


def test_groups_stay_within_a_client_unless_asked(planted, library):
    per_client = find_duplicates(library)
    assert not any("from_zhangsan.jpg" in _names(g) for g in per_client)
    across = find_duplicates(library, all_clients=True)
    group = next(g for g in across if "orig1.jpg" in _names(g))
    assert "from_zhangsan.jpg" in _names(group)
    assert group.differences["client"] == ["张三", "李四"]
    only = find_duplicates(library, flt=PhotoFilter(client="李四"))
    assert only == []
    with pytest.raises(CleanupError, match="no client named"):
        find_duplicates(library, flt=PhotoFilter(client="nobody"))


def test_filters_narrow_the_candidates(planted, library):
    groups = find_duplicates(library, flt=PhotoFilter(project="导出"))
    # Without the originals (project 会议) the copies still group among themselves.
    assert groups and all("/导出/" in m.photo.path for g in groups for m in g.members)
    assert not any("orig1.jpg" in _names(g) for g in groups)


def test_exact_strictness_only_groups_identical_files(planted, library):
    assert find_duplicates(library, level="exact") == []
    groups = find_duplicates(library, level="exact", all_clients=True)
    assert [_names(g) for g in groups] == [{"orig1.jpg", "from_zhangsan.jpg"}]
    assert "identical" in groups[0].members[1].reason
    with pytest.raises(DuplicateError, match="unknown strictness"):
        find_duplicates(library, level="loose")


def test_many_identical_files_form_one_group():
    hashes = ["x", "y", "x", "x", "z", "x"]
    groups = find_groups(strictness("exact"), hashes, [5, 4, 3, 2, 1, 0])
    assert [sorted(g) for g in groups] == [[0, 2, 3, 5]]


def test_strictness_levels_are_documented_in_words():
    assert list(STRICTNESS) == ["exact", "near", "similar"]
    for level in STRICTNESS.values():
        assert len(level.meaning.split()) > 8 and "cosine" not in level.meaning
    assert strictness("near").max_hamming < strictness("similar").max_hamming


def test_group_ids_name_the_members_and_survive_a_later_command(planted, library):
    group = find_duplicates(library)[0]
    assert group.id == group_id(reversed(group.photo_ids))
    assert parse_group_id(group.id) == tuple(sorted(group.photo_ids))
    again = {g.id for g in find_duplicates(library)}
    assert group.id in again
    for bad in ("", "12", "12,x", "a,b"):
        with pytest.raises(DuplicateError, match="GROUP|one photo"):
            parse_group_id(bad)


def test_resolve_refuses_photos_that_are_not_duplicates(planted, library):
    photos = library.catalog.list_photos(PhotoFilter(client="张三"), limit=100)
    ids = {Path(p.path).name: p.id for p in photos}
    with pytest.raises(CleanupError, match="not all duplicates"):
        resolve_group(library, group_id([ids["orig1.jpg"], ids["other100.jpg"]]))
    with pytest.raises(CleanupError, match="not in group"):
        resolve_group(library, group_id([ids["orig1.jpg"], ids["orig1_q60.jpg"]]),
                      keep=ids["orig2.jpg"])
    assert library.catalog.status_counts().get("trashed", 0) == 0


def test_keeper_inherits_the_accepted_tags_of_the_copies(planted, library):
    catalog = library.catalog
    for key in ("booth", "meeting"):
        catalog.save_tag(TagRow(key, key, key, (key,), "user", False, None, ""))
    group = next(g for g in find_duplicates(library) if "orig2.jpg" in _names(g))
    copies = [m.photo.id for m in group.members if not m.keeper]
    catalog.decide_tags([copies[0]], "booth", "accepted")
    catalog.decide_tags([copies[1]], "meeting", "accepted")
    catalog.decide_tags([group.keeper_id], "meeting", "rejected")
    [listed] = [g for g in find_duplicates(library) if g.id == group.id]
    assert listed.differences["tags"] == ["booth", "meeting"]
    result = resolve_group(library, group.id)
    assert result.inherited_tags == ["booth"]
    keeper = catalog.get_photo(group.keeper_id)
    assert keeper.tags == ("booth",)  # the rejection on the keeper stands


def test_copy_of_a_real_camera_photo_loses_to_it(tmp_path, testdata, library, tiny_encoder):
    root = tmp_path / "photos" / "赵六"
    root.mkdir(parents=True)
    original = root / "Nikon_D70.jpg"
    shutil.copyfile(testdata / "jpg" / "Nikon_D70.jpg", original)
    save_variant(original, "png", root)
    save_variant(original, "q60", root)
    index_paths(library, tiny_encoder, [root.parent])
    [group] = find_duplicates(library)
    assert _keeper_name(group) == "Nikon_D70.jpg" and len(group.members) == 3


def test_burst_frames_are_similar_not_near_duplicates(tmp_path, library, tiny_encoder):
    """Two camera files with different capture times are different shots: `near` keeps
    the second frame out (and the copies of frame 1 with frame 1), `similar` joins it."""
    root = tmp_path / "photos" / "孙七"
    first = save_original(root / "frame1.jpg", seed=9, taken="2024:05:01 10:00:00")
    save_burst_frame(first, root / "frame2.jpg", taken="2024:05:01 10:00:01")
    for kind in ("q60", "png", "bright"):
        save_variant(first, kind, root)
    index_paths(library, tiny_encoder, [root.parent])
    [near] = find_duplicates(library, level="near")
    assert _names(near) == {"frame1.jpg", "frame1_q60.jpg", "frame1_png.png",
                            "frame1_bright.jpg"}
    [similar] = find_duplicates(library, level="similar")
    assert "frame2.jpg" in _names(similar) and "frame1.jpg" in _names(similar)


# ----------------------------------------------------- synthetic vectors
def _unit(rng, n, dim=32):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _flip(value: int, bits: list[int]) -> int:
    for b in bits:
        value ^= 1 << b
    return value - (1 << 64) if value >= 1 << 63 else value


def test_groups_never_chain_through_a_middle_photo():
    # A~B and B~C at `near` (hash 6 bits apart each) but A and C are 12 bits apart.
    level = strictness("near")
    vectors = np.tile(_unit(np.random.default_rng(0), 1), (3, 1))
    phashes = np.array([_flip(0, []), _flip(0, list(range(6))), _flip(0, list(range(12)))])
    assert hamming_many(phashes[[0, 1]], phashes[[1, 2]]).tolist() == [6, 6]
    for order in ([0, 1, 2], [1, 0, 2], [2, 1, 0]):
        groups = find_groups(level, ["a", "b", "c"], order, vectors=vectors, phashes=phashes)
        assert len(groups) == 1 and not {0, 2} <= set(groups[0])
        assert groups[0][0] == order[0] or order[0] not in groups[0]


def test_a_copy_waits_for_its_own_original():
    """Copies c1, c2 of A also resemble B (another shot, seeded first): they belong with
    A, the photo they are closest to, not with whichever seed comes first."""
    a, b, c1, c2 = range(4)
    phashes = np.array([0, _flip(0, [1, 2, 3, 4]), 0, _flip(0, [9])])
    pairs = np.array([(a, c1), (a, c2), (b, c1), (b, c2), (c1, c2)])
    groups = complete_linkage_groups(pairs, [b, a, c1, c2], phashes=phashes)
    assert groups == [[a, c1, c2]]


def test_every_pair_inside_a_group_matches_on_a_long_drift():
    """A slow drift (each photo 3 bits from the previous) must split, not become one
    group of photos 30 bits apart."""
    rng = np.random.default_rng(1)
    n = 12
    vectors = np.tile(_unit(rng, 1), (n, 1))
    phashes = np.array([_flip(0, list(range(3 * i))) for i in range(n)])
    level = strictness("near")
    groups = find_groups(level, [str(i) for i in range(n)], list(range(n)),
                         vectors=vectors, phashes=phashes)
    assert len(groups) >= 3
    for g in groups:
        h = phashes[g]
        assert hamming_many(np.repeat(h, len(g)), np.tile(h, len(g))).max() <= 10


def _brute_force_pairs(vectors, phashes, level):
    sims = vectors @ vectors.T
    i, j = np.nonzero(np.triu(sims > level.min_cosine, k=1))
    keep = hamming_many(phashes[i], phashes[j]) <= level.max_hamming
    return {(int(a), int(b)) for a, b in zip(i[keep], j[keep], strict=True)}


@pytest.mark.parametrize("flat_limit", [100_000, 500])
def test_fast_all_pairs_pass_agrees_with_brute_force(flat_limit):
    """Flat (exact) and inverted-file (approximate) range search against brute force on
    clustered synthetic vectors: nothing wrong is reported, almost nothing is missed."""
    rng = np.random.default_rng(2)
    centres = _unit(rng, 400, dim=64)
    members = rng.integers(0, 400, 3000)
    vectors = centres[members] + 0.03 * rng.standard_normal((3000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    base = rng.integers(-(2**63), 2**63 - 1, 400, dtype=np.int64)
    phashes = np.array([_flip(int(base[c]), list(rng.choice(64, 2, replace=False)))
                        for c in members])
    level = strictness("near")
    truth = _brute_force_pairs(vectors, phashes, level)
    found = {tuple(p) for p in similar_pairs(vectors, phashes, level,
                                             flat_limit=flat_limit).tolist()}
    assert len(truth) > 3000
    assert found <= truth
    assert len(found) >= 0.98 * len(truth)
    if flat_limit > len(vectors):
        assert found == truth
