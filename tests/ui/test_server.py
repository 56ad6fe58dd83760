"""The web app's own image routes: a thumbnail by photo id and nothing else.

Requests are sent raw (http.client does not normalise `..` or decode `%2F`), against the
real server on a free localhost port, so what is tested is what a browser could ask for.
"""

from __future__ import annotations

import http.client
import inspect
import io
import socket
from urllib.parse import quote

import pytest
from PIL import Image

from indexer.library import open_library
from indexer.pipeline import index_paths
from tests.conftest import write_photo
from tests.ui.web_fixtures import make_services
from ui import server as web


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_encoder):
    base = tmp_path_factory.mktemp("web-routes")
    photos = base / "photos"
    big = write_photo(photos / "张三" / "big.jpg", seed=1, size=(2400, 1800), quality=92)
    small = write_photo(photos / "李四" / "small.jpg", seed=2)
    gone = write_photo(photos / "王五" / "gone.jpg", seed=3)
    library = open_library(base / "library")
    index_paths(library, tiny_encoder, [photos])
    services = make_services(library, tiny_encoder)
    ids = {p.name: services.search.resolve_photo(str(p)) for p in (big, small, gone)}
    library.catalog.mark_missing([ids["gone.jpg"]])
    running = web.start_server(services)
    yield {"services": services, "url": running.url, "port": int(running.url.split(":")[2]
           .strip("/")), "ids": ids, "photos": photos, "big": big, "library": library}
    running.stop()
    library.close()


def get(site, path: str) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", site["port"], timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_thumbnail_is_served_by_id_from_the_cache(site):
    photo_id = site["ids"]["big.jpg"]
    status, headers, body = get(site, f"/thumb/{photo_id}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert headers["x-content-type-options"] == "nosniff"
    cached = web.thumbnail_file(site["services"], str(photo_id))
    assert cached is not None and cached.read_bytes() == body
    assert max(Image.open(io.BytesIO(body)).size) <= 320


def test_preview_is_a_downscaled_copy_never_the_original(site):
    photo_id = site["ids"]["big.jpg"]
    status, headers, body = get(site, f"/preview/{photo_id}")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert body != site["big"].read_bytes()
    assert max(Image.open(io.BytesIO(body)).size) == 1280
    # Second request: served from the cache, same bytes.
    assert get(site, f"/preview/{photo_id}")[2] == body


def test_photos_that_are_not_searchable_are_not_served(site):
    gone = site["ids"]["gone.jpg"]
    assert get(site, f"/thumb/{gone}")[0] == 404
    assert get(site, f"/preview/{gone}")[0] == 404
    assert get(site, "/thumb/424242")[0] == 404


@pytest.mark.parametrize("path", [
    "/thumb/../catalog.db",
    "/thumb/..%2Fcatalog.db",
    "/thumb/%2e%2e%2fcatalog.db",
    "/thumb/%252e%252e%252fcatalog.db",
    "/thumb/..%5Ccatalog.db",
    "/thumb/%2Fetc%2Fpasswd",
    "/thumb//etc/passwd",
    "/thumb/1/../../catalog.db",
    "/thumb/1%00",
    "/thumb/1.jpg",
    "/thumb/-1",
    "/thumb/0x1",
    "/thumb/" + quote("１"),
    "/thumb/99999999999999999999999",
    "/preview/../../etc/passwd",
    "/preview/%2e%2e%2f%2e%2e%2fcatalog.db",
    "/thumbs/../catalog.db",
])
def test_no_path_in_a_request_reaches_a_file(site, path):
    status, _headers, body = get(site, path)
    assert status in (400, 404), (path, status)
    assert b"SQLite format" not in body and b"root:" not in body


def test_absolute_paths_of_photos_and_library_are_refused_everywhere(site):
    targets = [site["big"], site["library"].root / "catalog.db",
               site["library"].thumbs_dir / "x.jpg"]
    original = site["big"].read_bytes()
    for target in targets:
        encoded = quote(str(target))
        for path in (f"/thumb/{encoded}", f"/thumb{encoded}", f"/preview/{encoded}",
                     f"/gradio_api/file={encoded}", f"/file={encoded}",
                     f"/gradio_api/file={quote(encoded)}"):
            status, _headers, body = get(site, path)
            assert status in (400, 403, 404), (path, status)
            assert original not in body and b"SQLite format" not in body


def test_route_helpers_accept_only_plain_decimal_ids(site):
    services = site["services"]
    good = str(site["ids"]["small.jpg"])
    assert web.thumbnail_file(services, good) is not None
    for raw in ("", " 1", "1 ", "+1", "１", "1e3", "../1", good + "/", "9" * 40):
        assert web.thumbnail_file(services, raw) is None
        assert web.preview_file(services, raw) is None


def test_listens_on_localhost_by_default_and_reports_a_taken_port(site):
    from ui.app import launch
    from ui.cli import build_parser

    assert inspect.signature(launch).parameters["host"].default == "127.0.0.1"
    assert inspect.signature(web.start_server).parameters["host"].default == "127.0.0.1"
    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port) == ("127.0.0.1", 7860)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(web.ServerError, match="--port"):
            web.check_port("127.0.0.1", taken.getsockname()[1])
