"""The Gradio layer itself: its screens, its safe defaults and the progress adapter."""

from __future__ import annotations

import pytest

from tests.ui.web_fixtures import make_services
from ui.app import BarProgress, build_app, event_data


def test_progress_bar_gets_done_and_total_without_a_flood():
    calls = []
    bar = BarProgress(lambda value, **kw: calls.append(value), min_interval=3600)
    bar.start(500)
    for _ in range(500):
        bar.advance()
    bar.finish()
    assert calls[0] == (0, 500) and calls[-1] == (500, 500)
    assert len(calls) <= 4  # start, the first advance, finish: the rest are throttled


def test_event_data_is_a_plain_dict_even_when_missing():
    class Evt:
        _data = {"action": "open", "photo": "3"}

    assert event_data(Evt()) == {"action": "open", "photo": "3"}
    assert event_data(object()) == {} and event_data(None) == {}


@pytest.fixture
def services(library, tiny_encoder):
    return make_services(library, tiny_encoder)


def test_the_app_has_four_bilingual_screens_and_no_analytics(services):
    import gradio as gr

    blocks = build_app(services)
    tabs = [b.label for b in blocks.blocks.values() if isinstance(b, gr.Tab)]
    assert tabs == ["搜索 Search", "标签审核 Tag review", "整理 Cleanup", "图库 Library"]
    assert blocks.analytics_enabled is False


def test_server_mounts_gradio_without_ssr_share_or_photo_paths(services):
    from ui.server import create_server

    app = create_server(services)
    paths = {getattr(r, "path", None) for r in app.routes}
    assert {"/thumb/{photo_id}", "/preview/{photo_id}"} <= paths
    blocks = next(r.app.blocks for r in app.routes if hasattr(getattr(r, "app", None),
                                                                "blocks"))
    assert blocks.ssr_mode is False and blocks.share is False
    assert not blocks.allowed_paths
    assert str(services.library.root) in blocks.blocked_paths
