"""The app's HTML: names from the user's folders are shown as text, never run as markup."""

from __future__ import annotations

from ui import handlers as h
from ui import render

HOSTILE = "<img src=x onerror=alert(1)>${alert(2)}`"


def test_client_names_and_tags_are_escaped_in_the_grid():
    tile = h.Tile(photo_id=7, name=HOSTILE + ".jpg", client=HOSTILE, project=None,
                  day="2024-01-02", tags=(HOSTILE,), score=0.5, thumb_url="/thumb/7")
    page = render.gallery(h.Results([tile], "ok"))
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'data-action="open"' in page
    assert 'data-photo="7"' in page and 'src="/thumb/7"' in page and "0.500" in page


def test_details_and_messages_are_escaped():
    details = h.PhotoDetails(
        photo_id=3, name="a.jpg", path=f"/photos/{HOSTILE}/a.jpg", folder="/photos",
        client=HOSTILE, client_source="folder", project=None, description=None,
        taken_at="2024-01-02T10:00:00", taken_at_source="exif", camera=None,
        dimensions=None, file_size="1 KB", tags=((HOSTILE, HOSTILE),),
        suggested=((HOSTILE, HOSTILE, 0.7),), text=HOSTILE, preview_url="/preview/3",
        thumb_url="/thumb/3")
    page = render.details(details)
    assert "<img src=x" not in page and "camera EXIF" in page and "文件夹 folder" in page
    assert 'data-action="accept-tag"' in page and "0.70" in page
    assert "<img src=x" not in render.message(h.Results([], HOSTILE, "error"))
    assert "<img src=x" not in render.gallery(h.Results([], HOSTILE, "empty"))


def test_empty_grid_shows_the_message_instead_of_tiles():
    page = render.gallery(h.Results([], "图库里还没有照片 No photos indexed yet", "empty"))
    assert "kz-grid" not in page and "No photos indexed yet" in page
