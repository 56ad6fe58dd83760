"""The web app's handlers as plain functions: what each screen shows and does, no browser.

The tiny test model has no semantics, so these tests check mechanics (filters, messages,
which photos can appear), never that a query finds the 'right' picture by meaning.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from indexer.pipeline import index_paths
from tests.conftest import write_photo
from tests.ui.web_fixtures import RecordingProgress, make_services
from ui import handlers as h


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "客户照片"
    for i in range(3):
        write_photo(root / "张三" / "会议" / f"z{i}.jpg", seed=i)
    write_photo(root / "张三" / "展会" / "z9.jpg", seed=9)
    write_photo(root / "李四" / "l0.jpg", seed=10)
    write_photo(root / "王五_20231015_展会.jpg", seed=20)
    (root / "李四" / "broken.jpg").write_bytes(b"")
    return root


@pytest.fixture
def services(library, tiny_encoder, photos):
    index_paths(library, tiny_encoder, [photos])
    return make_services(library, tiny_encoder)


def clients_of(results: h.Results) -> set[str | None]:
    return {t.client for t in results.tiles}


def test_first_screen_lists_latest_photos_and_clients_with_counts(services):
    assert h.client_choices(services) == [
        ("全部客户 All clients (6)", ""), ("张三 (4)", "张三"), ("李四 (1)", "李四"),
        ("王五 (1)", "王五"),
    ]
    assert h.project_choices(services, "张三") == [
        ("全部项目 All projects", ""), ("会议 (3)", "会议"), ("展会 (1)", "展会")]

    first = h.browse(services, h.Filters())
    assert first.kind == "ok" and len(first.tiles) == 6
    assert all(t.thumb_url == f"/thumb/{t.photo_id}" and t.score is None for t in first.tiles)
    assert "Latest photos" in first.message


def test_text_search_honours_client_project_and_date_filters(services):
    everyone = h.search_text(services, "product demo at booth", h.Filters(), k=10)
    assert len(everyone.tiles) == 6 and all(t.score is not None for t in everyone.tiles)

    zhang = h.search_text(services, "展台产品演示", h.Filters(client="张三"))
    assert clients_of(zhang) == {"张三"} and len(zhang.tiles) == 4

    meeting = h.search_text(services, "会议", h.Filters(client="张三", project="会议"))
    assert {t.project for t in meeting.tiles} == {"会议"} and len(meeting.tiles) == 3

    october = h.search_text(services, "展会", h.Filters(since="2023-10-01", until="2023-10-31"))
    assert [(t.client, t.day) for t in october.tiles] == [("王五", "2023-10-15")]

    browsing = h.browse(services, h.Filters(client="李四"))
    assert clients_of(browsing) == {"李四"}


def test_empty_results_and_bad_input_say_what_to_do(services, library, tiny_encoder, tmp_path):
    unknown = h.search_text(services, "x", h.Filters(client="赵六"))
    assert unknown.kind == "error" and unknown.tiles == []
    assert "no photos for client 赵六 yet — index a folder" in unknown.message

    no_match = h.search_text(services, "x", h.Filters(tag="不存在的标签"))
    assert no_match.kind == "empty" and "remove a filter" in no_match.message

    bad_date = h.browse(services, h.Filters(since="15/10/2023"))
    assert bad_date.kind == "error" and "YYYY-MM-DD" in bad_date.message
    swapped = h.browse(services, h.Filters(since="2024-01-02", until="2024-01-01"))
    assert swapped.kind == "error" and "swap" in swapped.message

    blank = h.search_text(services, "   ", h.Filters())
    assert blank.kind == "error" and "type some words" in blank.message

    from indexer.library import open_library

    with open_library(tmp_path / "empty-library") as empty_lib:
        empty = h.browse(make_services(empty_lib, tiny_encoder), h.Filters())
    assert empty.kind == "empty" and "add a folder in the 图库 Library tab" in empty.message


def test_missing_model_is_one_message_with_the_fix(tmp_path):
    from indexer.library import open_library
    from ui.context import Services, Settings

    with open_library(tmp_path / "lib") as lib:
        services = Services(Settings(library_dir=lib.root, model="multilingual"), lib)
        result = h.search_text(services, "展台产品演示", h.Filters())
        outcome = h.index_folder(services, str(tmp_path))
    assert result.kind == "error"
    assert result.message.startswith("模型未下载 model not downloaded — ")
    assert "kezhao models download multilingual" in result.message
    assert not outcome.ok and "model not downloaded" in outcome.message


def test_tiny_model_notice_is_shown_only_for_the_test_model(services, library, tiny_encoder):
    assert "NO semantic meaning" in h.model_notice(services)
    assert h.model_notice(make_services(library, tiny_encoder, model="multilingual")) is None


def test_find_similar_excludes_the_photo_and_keeps_filters(services):
    photo = h.browse(services, h.Filters(client="张三")).tiles[0]
    similar = h.find_similar(services, photo.photo_id, h.Filters(client="张三"))
    assert photo.photo_id not in {t.photo_id for t in similar.tiles}
    assert clients_of(similar) == {"张三"} and len(similar.tiles) == 3
    assert f"#{photo.photo_id}" in similar.message

    assert h.find_similar(services, 99999, h.Filters()).kind == "error"


def test_search_by_example_image_finds_the_same_picture_first(services, photos, tmp_path):
    upload = tmp_path / "upload" / "from-wechat.png"
    upload.parent.mkdir()
    Image.open(photos / "李四" / "l0.jpg").save(upload)
    result = h.search_example(services, str(upload), h.Filters())
    assert result.tiles[0].client == "李四" and "look like your example" in result.message

    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    bad = h.search_example(services, str(not_image), h.Filters())
    assert bad.kind == "error" and "cannot use" in bad.message
    assert h.search_example(services, None, h.Filters()).kind == "error"


def test_run_query_reruns_the_current_question_with_new_filters(services):
    photo = h.browse(services, h.Filters()).tiles[0]
    again = h.run_query(services, h.Query("similar", photo_id=photo.photo_id),
                        h.Filters(client="李四"))
    assert clients_of(again) <= {"李四"} and "Similar to photo" in again.message
    words = h.run_query(services, h.Query("text", "会议"), h.Filters(project="会议"))
    assert {t.project for t in words.tiles} == {"会议"}
    assert "Latest photos" in h.run_query(services, h.Query(), h.Filters()).message


def test_details_folder_and_change_client(services, photos):
    tile = h.browse(services, h.Filters(client="王五")).tiles[0]
    details = h.photo_details(services, tile.photo_id)
    assert details.path == str(photos / "王五_20231015_展会.jpg")
    assert (details.client, details.client_source) == ("王五", "filename")
    assert details.taken_at.startswith("2023-10-15") and details.taken_at_source == "filename"
    assert details.description == "展会" and details.dimensions == "320 × 240 JPEG"
    assert details.preview_url == f"/preview/{tile.photo_id}"
    assert h.containing_folder(services, tile.photo_id) == str(photos)

    message = h.change_client(services, str(tile.photo_id), " 李四 ")
    assert "李四" in message
    changed = h.photo_details(services, tile.photo_id)
    assert (changed.client, changed.client_source) == ("李四", "manual")
    assert ("李四 (2)", "李四") in h.client_choices(services)
    assert ("王五 (1)", "王五") not in h.client_choices(services)

    with pytest.raises(h.FormError, match="no longer in the library"):
        h.photo_details(services, 99999)
    with pytest.raises(h.FormError, match="not a photo id"):
        h.change_client(services, "../1", "x")


def test_index_a_folder_with_progress_then_library_status(library, tiny_encoder, photos):
    services = make_services(library, tiny_encoder)
    progress = RecordingProgress()
    outcome = h.index_folder(services, str(photos), progress=progress)
    assert outcome.ok and outcome.summary["new"] == 6 and outcome.summary["failed"] == 1
    assert progress.calls[0] == ("start", 7) and progress.calls[-1] == ("finish", 0)
    assert progress.advanced == 7
    assert "failed 1" in outcome.message and "listed below" in outcome.message

    status = h.library_status(services)
    assert (status.searchable, status.failed, status.index_vectors) == (6, 1, 6)
    assert status.model_id.startswith("tiny-test") and status.tiny_model
    assert [f.path for f in status.folders] == [str(photos)] and status.folders[0].reachable
    assert status.failures[0].path.endswith("broken.jpg")
    assert status.failures[0].reason == "empty" and status.failure_reasons == {"empty": 1}
    assert dict(status.clients) == {"张三": 4, "李四": 1, "王五": 1}

    assert not h.index_folder(services, "  ").ok
    missing = h.index_folder(services, str(photos / "nope"))
    assert not missing.ok and "folder not found" in missing.message


def test_index_with_client_and_reindex_keeps_that_client(library, tiny_encoder, tmp_path):
    services = make_services(library, tiny_encoder)
    assert not h.reindex_all(services).ok
    folder = tmp_path / "新项目"
    write_photo(folder / "a.jpg", seed=1)
    assert h.index_folder(services, str(folder), client="赵六").ok
    write_photo(folder / "b.jpg", seed=2)
    outcome = h.reindex_all(services, RecordingProgress())
    assert outcome.ok and outcome.summary["new"] == 1 and outcome.summary["unchanged"] == 1
    assert h.client_choices(services)[1:] == [("赵六 (2)", "赵六")]


def test_first_screen_never_opens_an_original(services, monkeypatch):
    """Search results are thumbnails by id: no original photo is decoded to show them."""

    def refuse(*args, **kwargs):
        raise AssertionError("an original photo was opened")

    monkeypatch.setattr(Image, "open", refuse)
    monkeypatch.setattr("search.query.decode_photo", refuse)
    from ui import render

    for results in (h.browse(services, h.Filters()),
                    h.search_text(services, "展台", h.Filters(client="张三")),
                    h.find_similar(services, 1, h.Filters())):
        assert results.kind == "ok" and results.tiles
        page = render.gallery(results)
        assert page.count('src="/thumb/') == len(results.tiles)
