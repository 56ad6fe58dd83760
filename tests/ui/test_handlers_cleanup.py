"""Cleanup handlers as plain functions: duplicate groups, poor photos, trash and restore."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from indexer.pipeline import index_paths
from tests.conftest import write_photo
from tests.ui.web_fixtures import make_services
from ui import handlers as h
from ui import handlers_cleanup as hc


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for folder in ("张三/展会", "张三/微信", "李四"):
        (root / folder).mkdir(parents=True)
    original = write_photo(root / "张三" / "展会" / "booth.jpg", seed=1, size=(1000, 750),
                           quality=95)
    shutil.copyfile(original, root / "张三" / "展会" / "booth copy.jpg")
    Image.open(original).resize((400, 300)).save(root / "张三" / "微信" / "booth small.jpg",
                                                 quality=70)
    write_photo(root / "张三" / "other.jpg", seed=2, size=(1000, 750))
    Image.new("RGB", (1000, 750), (128, 128, 128)).save(root / "李四" / "flat.jpg")
    Image.new("RGB", (1000, 750), (8, 8, 8)).save(root / "李四" / "dark.jpg")
    return root


@pytest.fixture
def services(library, tiny_encoder, photos):
    index_paths(library, tiny_encoder, [photos])
    return make_services(library, tiny_encoder)


def ids_by_name(services) -> dict[str, int]:
    return {t.name: t.photo_id for t in h.browse(services, h.Filters()).tiles}


def test_duplicate_groups_show_the_keeper_first_with_reasons(services):
    exact = hc.duplicate_groups(services, "exact")
    assert len(exact.items) == 1 and "duplicate groups" in exact.message
    group = exact.items[0]
    assert {m.name for m in group.members} == {"booth.jpg", "booth copy.jpg"}
    assert group.members[0].keeper and not group.members[1].keeper
    assert all(m.reason for m in group.members) and group.strictness == "exact"
    assert all(m.thumb_url == f"/thumb/{m.photo_id}" for m in group.members)

    near = hc.duplicate_groups(services, "near")
    assert {m.name for m in near.items[0].members} == {"booth.jpg", "booth copy.jpg",
                                                       "booth small.jpg"}
    assert near.items[0].members[0].name != "booth small.jpg"  # the bigger copy is kept
    assert hc.duplicate_groups(services, "near", client="李四").kind == "empty"
    assert hc.duplicate_groups(services, "wobbly").kind == "error"


def test_resolve_a_group_then_restore_from_the_trash(services, photos):
    before = (photos / "张三" / "微信" / "booth small.jpg").read_bytes()
    group = hc.duplicate_groups(services, "near").items[0]
    keeper = group.members[0]
    message = hc.resolve_duplicates(services, group.group_id)
    assert f"kept #{keeper.photo_id}" in message and "moved 2 photo(s)" in message
    assert hc.duplicate_groups(services, "near").kind == "empty"
    remaining = ids_by_name(services)
    assert keeper.name in remaining and "booth small.jpg" not in remaining

    trash = hc.trash_contents(services)
    assert len(trash.items) == 2 and "2 张 photos in the trash" in trash.message
    small = next(t for t in trash.items if t.name == "booth small.jpg")
    assert small.reason.startswith(f"duplicate of #{keeper.photo_id}")
    assert small.thumb_url == f"/thumb/{small.photo_id}"
    assert "restored" in hc.restore_one(services, str(small.trash_id))
    assert (photos / "张三" / "微信" / "booth small.jpg").read_bytes() == before
    assert "booth small.jpg" in ids_by_name(services)
    assert "restored 1 photo(s)" in hc.restore_everything(services)
    assert hc.trash_contents(services).kind == "empty"
    with pytest.raises(h.FormError, match="not in the trash"):
        hc.restore_one(services, small.trash_id)


def test_keep_another_photo_of_the_group(services):
    group = hc.duplicate_groups(services, "near").items[0]
    other = group.members[-1]
    assert f"kept #{other.photo_id}" in hc.resolve_duplicates(services, group.group_id,
                                                              str(other.photo_id))
    assert set(ids_by_name(services)) == {other.name, "other.jpg", "flat.jpg", "dark.jpg"}


def test_bogus_groups_are_refused_without_moving_anything(services):
    ids = ids_by_name(services)
    unrelated = f"{ids['other.jpg']},{ids['dark.jpg']}"
    with pytest.raises(h.FormError, match="not all duplicates"):
        hc.resolve_duplicates(services, unrelated)
    with pytest.raises(h.FormError, match="not a duplicate group"):
        hc.resolve_duplicates(services, "../etc")
    assert hc.trash_contents(services).kind == "empty"


def test_poor_photo_lists_and_trash_one(services):
    blurry = hc.poor_list(services, "blurry")
    assert {p.name for p in blurry.items} >= {"flat.jpg"}
    assert all(p.reason.startswith("blurry:") for p in blurry.items)
    dark = hc.poor_list(services, "dark")
    assert [p.name for p in dark.items] == ["dark.jpg"] and "dark" in dark.message
    assert [p.name for p in hc.poor_list(services, "small").items] == ["booth small.jpg"]
    assert hc.poor_list(services, "ugly").kind == "error"

    photo = dark.items[0].photo_id
    assert "moved to the trash" in hc.trash_one(services, photo, "dark photo")
    assert hc.poor_list(services, "dark").kind == "empty"
    assert hc.trash_contents(services).items[0].reason == "dark photo"
    with pytest.raises(h.FormError, match="already in the trash"):
        hc.trash_one(services, photo)
    with pytest.raises(h.FormError, match="not a photo id"):
        hc.trash_one(services, "/etc/passwd")
