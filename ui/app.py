"""The Gradio web app: components and the bindings from them to the handlers.

Built by a function that receives the services, so there is no global state and the logic
behind every button is a plain function (`ui.handlers`, `ui.handlers_tags`,
`ui.handlers_cleanup`) tested without a browser. This module only lays out components,
converts form values into handler arguments and handler results into component updates.
Gradio is imported inside functions: the CLI must start fast.

No `from __future__ import annotations` here: Gradio finds the `gr.EventData` parameter of
a listener by its evaluated annotation, and `gr` is only imported inside functions.
"""

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from indexer.tagging import TagService
from ui import handlers as h
from ui import handlers_cleanup as hc
from ui import handlers_tags as ht
from ui import render, render_review
from ui.context import Services

APP_TITLE = "客照 kezhao"
HEADER = (
    '<div class="kz-header"><h1>客照 kezhao</h1>'
    "<p>按客户查找照片 · Find any client photo by words, by example or by client</p></div>"
)


def theme() -> Any:
    """Gradio's default look with fonts that are on this machine: nothing is fetched from
    the internet, and Chinese falls back to Noto Sans CJK."""
    import gradio as gr

    return gr.themes.Default(
        primary_hue="teal",
        font=[gr.themes.LocalFont("Source Sans Pro"), "Noto Sans CJK SC", "PingFang SC",
              "Microsoft YaHei", "system-ui", "sans-serif"],
    )


class BarProgress:
    """The indexing pipeline's progress, shown as Gradio's live progress bar.

    Updates are throttled: a progress message per photo would flood the browser.
    """

    def __init__(self, bar: Any, min_interval: float = 0.25) -> None:
        self._bar = bar
        self._interval = min_interval
        self._last = 0.0
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        self.total += total
        self._show(force=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._show()

    def finish(self) -> None:
        self._show(force=True)

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self._interval:
            self._last = now
            self._bar((self.done, self.total or None), desc="索引中 Indexing", unit="photos")


def event_data(evt: Any) -> dict:
    """The data attributes a custom HTML part sent with its click (see render.ACTION_JS)."""
    data = getattr(evt, "_data", None)
    return data if isinstance(data, dict) else {}


def _filters(client: str | None, project: str | None, tag: str | None,
             since: Any, until: Any) -> h.Filters:
    return h.Filters(client=client, project=project, tag=tag,
                     since=None if since is None else str(since),
                     until=None if until is None else str(until))


@dataclass
class _SearchTab:
    """The search screen's components that other screens update."""

    query_state: Any
    message: Any
    grid: Any
    client: Any
    project: Any
    tag: Any
    filters: list


def build_app(services: Services) -> Any:
    """Return the `gr.Blocks` of the web app, bound to `services`."""
    import gradio as gr

    tags = services.tags
    with gr.Blocks(title=APP_TITLE, analytics_enabled=False) as blocks:
        gr.HTML(HEADER)
        notice = gr.HTML(render.notice(h.model_notice(services)), elem_id="kz-notice")
        with gr.Tabs():
            with gr.Tab("搜索 Search", id="search", elem_id="kz-tab-search") as search_tab:
                search = _build_search_tab(services, tags)
            with gr.Tab("标签审核 Tag review", id="review", elem_id="kz-tab-review") as rv_tab:
                _build_review_tab(services, tags, search, rv_tab)
            with gr.Tab("整理 Cleanup", id="cleanup", elem_id="kz-tab-cleanup") as cl_tab:
                _build_cleanup_tab(services, cl_tab)
            with gr.Tab("图库 Library", id="library", elem_id="kz-tab-library") as lib_tab:
                _build_library_tab(services, search, notice, lib_tab)

        def first_screen():
            results = h.browse(services, h.Filters())
            return (render.notice(h.model_notice(services)),
                    gr.update(choices=h.client_choices(services), value=""),
                    gr.update(choices=h.project_choices(services), value=""),
                    gr.update(choices=ht.filter_choices(tags), value=""),
                    render.message(results), render.gallery(results))

        blocks.load(first_screen, None, [notice, search.client, search.project, search.tag,
                                         search.message, search.grid])

        def back_to_search(q, *flt):
            results = h.run_query(services, q, _filters(*flt))
            return (gr.update(choices=ht.filter_choices(tags)), render.message(results),
                    render.gallery(results))

        search_tab.select(back_to_search, [search.query_state, *search.filters],
                          [search.tag, search.message, search.grid])
    return blocks


def _build_search_tab(services: Services, tags: TagService) -> _SearchTab:
    import gradio as gr

    query_state = gr.State(h.Query())
    selected = gr.State(None)
    with gr.Row(equal_height=True):
        query = gr.Textbox(show_label=False, scale=6, elem_id="kz-query", autofocus=True,
                           placeholder="输入中文或英文 Type in Chinese or English — "
                                       "例如 展台产品演示 / product demo at booth")
        go = gr.Button("搜索 Search", variant="primary", scale=1, elem_id="kz-search")
    with gr.Row():
        client = gr.Dropdown(label="客户 Client", choices=[("全部客户 All clients", "")],
                             value="", elem_id="kz-client", scale=2)
        project = gr.Dropdown(label="项目 Project", choices=[("全部项目 All projects", "")],
                              value="", elem_id="kz-project", scale=2)
        tag = gr.Dropdown(label="标签 Tag", choices=[("全部标签 All tags", "")], value="",
                          elem_id="kz-tag", scale=2)
        since = gr.DateTime(label="从 From", include_time=False, type="string",
                            elem_id="kz-since", scale=1, min_width=180)
        until = gr.DateTime(label="到 To", include_time=False, type="string",
                            elem_id="kz-until", scale=1, min_width=180)
    with gr.Accordion("以图搜图 Search by example photo", open=False, elem_id="kz-example"):
        example = gr.Image(type="filepath", sources=["upload", "clipboard"], height=200,
                           label="拖入或选择一张照片 Drop or choose a photo",
                           elem_id="kz-example-image")
    message = gr.HTML(elem_id="kz-message")
    with gr.Row():
        with gr.Column(scale=3):
            grid = gr.HTML(render.gallery(h.Results([], "…", "ok")), elem_id="kz-grid",
                           js_on_load=render.ACTION_JS)
        with gr.Column(scale=2, visible=False, elem_id="kz-details-col") as details_col:
            details = gr.HTML(elem_id="kz-details", js_on_load=render.ACTION_JS)
            with gr.Row():
                similar = gr.Button("找相似 Find similar", elem_id="kz-similar")
                folder_btn = gr.Button("打开所在文件夹 Open containing folder",
                                       elem_id="kz-folder")
            folder = gr.Textbox(label="所在文件夹（复制此路径）Folder — copy this path",
                                visible=False, interactive=False, buttons=["copy"],
                                elem_id="kz-folder-path")
            with gr.Row(equal_height=True):
                new_client = gr.Dropdown(label="改客户 Change client", allow_custom_value=True,
                                         choices=[], elem_id="kz-new-client", scale=3)
                save_client = gr.Button("保存 Save", elem_id="kz-save-client", scale=1)
            action = gr.HTML(elem_id="kz-action")
    flt = [client, project, tag, since, until]
    shown = [query_state, message, grid]

    def show(query: h.Query, results: h.Results) -> tuple:
        return query, render.message(results), render.gallery(results)

    def on_text(text, *values):
        q = h.Query("text", text) if (text or "").strip() else h.Query()
        return show(q, h.run_query(services, q, _filters(*values)))

    def on_example(path, *values):
        q = h.Query("example", image=path) if path else h.Query()
        return show(q, h.run_query(services, q, _filters(*values)))

    def on_filter(q, *values):
        return show(q, h.run_query(services, q, _filters(*values)))

    def on_client(q, client_name, *rest):
        projects = gr.update(choices=h.project_choices(services, client_name), value="")
        return (*show(q, h.run_query(services, q, _filters(client_name, None, *rest[1:]))),
                projects)

    def on_grid(evt: gr.EventData):
        photo_id = event_data(evt).get("photo")
        try:
            d = h.photo_details(services, photo_id)
        except h.FormError as err:
            return (None, gr.update(visible=True), render.status_line(str(err), "error"),
                    gr.update(visible=False), gr.update(), "")
        clients = [name for _label, name in h.client_choices(services) if name]
        return (d.photo_id, gr.update(visible=True), render.details(d),
                gr.update(visible=False, value=""),
                gr.update(choices=clients, value=d.client or ""), "")

    def on_details(evt: gr.EventData):
        data = event_data(evt)
        photo_id = data.get("photo")
        try:
            done = ht.decide(tags, [photo_id], data.get("tag", ""),
                             accept=data.get("action") == "accept-tag")
            note = render.status_line(done, "done")
        except h.FormError as err:
            note = render.status_line(str(err), "error")
        try:
            page = render.details(h.photo_details(services, photo_id))
        except h.FormError as err:
            page = render.status_line(str(err), "error")
        return page, note, gr.update(choices=ht.filter_choices(tags))

    def on_similar(photo_id, *values):
        if photo_id is None:
            return show(h.Query(), h.Results([], "先点开一张照片 open a photo first", "error"))
        q = h.Query("similar", photo_id=int(photo_id))
        return show(q, h.run_query(services, q, _filters(*values)))

    def on_folder(photo_id):
        try:
            return gr.update(visible=True, value=h.containing_folder(services, photo_id))
        except h.FormError as err:
            return gr.update(visible=True, value=str(err))

    def on_save_client(photo_id, name, q, *values):
        try:
            done = h.change_client(services, photo_id, name)
            page = render.details(h.photo_details(services, photo_id))
            note = render.status_line(done, "done")
        except h.FormError as err:
            page, note = gr.update(), render.status_line(str(err), "error")
        results = h.run_query(services, q, _filters(*values))
        return (page, note, gr.update(choices=h.client_choices(services)),
                render.message(results), render.gallery(results))

    go.click(on_text, [query, *flt], shown)
    query.submit(on_text, [query, *flt], shown)
    example.upload(on_example, [example, *flt], shown)
    client.input(on_client, [query_state, *flt], [*shown, project])
    project.input(on_filter, [query_state, *flt], shown)
    tag.input(on_filter, [query_state, *flt], shown)
    for box in (since, until):
        box.change(on_filter, [query_state, *flt], shown)
    grid.click(on_grid, None, [selected, details_col, details, folder, new_client, action])
    details.click(on_details, None, [details, action, tag])
    similar.click(on_similar, [selected, *flt], shown)
    folder_btn.click(on_folder, selected, folder)
    save_client.click(on_save_client, [selected, new_client, query_state, *flt],
                      [details, action, client, message, grid])
    return _SearchTab(query_state, message, grid, client, project, tag, flt)


def _build_review_tab(services: Services, tags: TagService, search: _SearchTab,
                      tab: Any) -> None:
    import gradio as gr

    with gr.Row(equal_height=True):
        tag = gr.Dropdown(label="待审标签 Tag to review", choices=[], elem_id="kz-review-tag",
                          scale=3)
        client = gr.Dropdown(label="客户 Client", choices=[("全部客户 All clients", "")],
                             value="", elem_id="kz-review-client", scale=2)
    with gr.Row():
        accept_all = gr.Button("全部接受 Accept all", elem_id="kz-accept-all")
        reject_all = gr.Button("全部拒绝 Reject all", elem_id="kz-reject-all")
        undo = gr.Button("撤销 Undo", elem_id="kz-undo")
    message = gr.HTML(elem_id="kz-review-message")
    queue = gr.HTML(elem_id="kz-review-queue", js_on_load=render.REVIEW_JS)
    outputs = [tag, client, message, queue, search.tag]

    def screen(tag_key, client_name, note: str | None = None, kind: str = "done") -> tuple:
        current = ht.review_queue(tags, tag_key, client_name)
        choices = ht.review_choices(tags, client_name)
        line = render.status_line(note, kind) if note else render.message(current)
        return (gr.update(choices=choices, value=current.tag_key if current.items else None),
                gr.update(choices=h.client_choices(services)), line,
                render_review.review(current), gr.update(choices=ht.filter_choices(tags)))

    def act(job, tag_key, client_name) -> tuple:
        try:
            return screen(tag_key, client_name, job())
        except h.FormError as err:
            return screen(tag_key, client_name, str(err), "error")

    def on_card(tag_key, client_name, evt: gr.EventData):
        data = event_data(evt)
        key = data.get("tag") or tag_key
        accept = data.get("action") == "accept"
        return act(lambda: ht.decide(tags, [data.get("photo")], key, accept), key, client_name)

    def on_all(accept: bool):
        def run(tag_key, client_name):
            return act(lambda: ht.decide_all(tags, tag_key, client_name, accept), tag_key,
                       client_name)
        return run

    tab.select(screen, [tag, client], outputs)
    tag.input(screen, [tag, client], outputs)
    client.input(screen, [tag, client], outputs)
    queue.click(on_card, [tag, client], outputs)
    accept_all.click(on_all(True), [tag, client], outputs)
    reject_all.click(on_all(False), [tag, client], outputs)
    undo.click(lambda t, c: act(lambda: ht.undo_last(tags), t, c), [tag, client], outputs)


def _build_cleanup_tab(services: Services, tab: Any) -> None:
    import gradio as gr

    message = gr.HTML(elem_id="kz-cleanup-message")
    gr.Markdown("### 重复照片 Duplicates")
    with gr.Row(equal_height=True):
        level = gr.Radio(hc.strictness_choices(), value="near", label="严格程度 Strictness",
                         elem_id="kz-strictness", scale=3)
        client = gr.Dropdown(label="客户 Client", choices=[("全部客户 All clients", "")],
                             value="", elem_id="kz-cleanup-client", scale=1)
    groups = gr.HTML(elem_id="kz-groups", js_on_load=render.ACTION_JS)
    gr.Markdown("### 质量问题 Blurry, dark or small")
    kind = gr.Radio(hc.poor_choices(), value="blurry", label="列表 List", elem_id="kz-poor-kind")
    poor = gr.HTML(elem_id="kz-poor", js_on_load=render.ACTION_JS)
    gr.Markdown("### 回收站 Trash")
    restore_all = gr.Button("全部还原 Restore all", elem_id="kz-restore-all")
    trash = gr.HTML(elem_id="kz-trash", js_on_load=render.ACTION_JS)
    inputs = [level, client, kind]
    outputs = [message, client, groups, poor, trash]

    def screen(level_name, client_name, kind_name, note: str | None = None,
               note_kind: str = "done") -> tuple:
        dupes = hc.duplicate_groups(services, level_name, client_name)
        return (render.status_line(note, note_kind) if note else render.message(dupes),
                gr.update(choices=h.client_choices(services)),
                render_review.duplicates(dupes),
                render_review.poor(hc.poor_list(services, kind_name, client_name)),
                render_review.trash(hc.trash_contents(services)))

    def act(job, *values) -> tuple:
        try:
            return screen(*values, job())
        except h.FormError as err:
            return screen(*values, str(err), "error")

    def on_group(level_name, client_name, kind_name, evt: gr.EventData):
        data = event_data(evt)
        return act(lambda: hc.resolve_duplicates(services, data.get("group", ""),
                                                 data.get("keep")),
                   level_name, client_name, kind_name)

    def on_poor(level_name, client_name, kind_name, evt: gr.EventData):
        photo_id = event_data(evt).get("photo")
        return act(lambda: hc.trash_one(services, photo_id, f"{kind_name} photo"),
                   level_name, client_name, kind_name)

    def on_trash(level_name, client_name, kind_name, evt: gr.EventData):
        trash_id = event_data(evt).get("trash")
        return act(lambda: hc.restore_one(services, trash_id), level_name, client_name,
                   kind_name)

    tab.select(screen, inputs, outputs)
    for control in (level, kind):
        control.input(screen, inputs, outputs)
    client.input(screen, inputs, outputs)
    groups.click(on_group, inputs, outputs)
    poor.click(on_poor, inputs, outputs)
    trash.click(on_trash, inputs, outputs)
    restore_all.click(lambda *v: act(lambda: hc.restore_everything(services), *v), inputs,
                      outputs)


def _build_library_tab(services: Services, search: _SearchTab, notice: Any, tab: Any) -> None:
    import gradio as gr

    with gr.Row(equal_height=True):
        folder = gr.Textbox(label="文件夹路径 Folder path", scale=4, elem_id="kz-add-path",
                            placeholder="/home/me/客户照片 — 此电脑上的文件夹 a folder on "
                                        "this computer")
        client = gr.Textbox(label="客户（可选）Client (optional)", scale=2,
                            elem_id="kz-add-client",
                            placeholder="留空则按文件夹/文件名 empty: from folders/names")
    with gr.Row():
        add = gr.Button("添加并索引 Add & index", variant="primary", elem_id="kz-add")
        reindex = gr.Button("重新索引全部 Re-index all", elem_id="kz-reindex")
        refresh = gr.Button("刷新 Refresh", elem_id="kz-refresh")
    outcome = gr.HTML(elem_id="kz-index-outcome", min_height=56)
    status = gr.HTML(elem_id="kz-library")
    busy = threading.Lock()

    def overview():
        return render.library(h.library_status(services))

    def after_index(result: h.IndexOutcome) -> tuple:
        return (render.message(result), overview(),
                gr.update(choices=h.client_choices(services)),
                render.notice(h.model_notice(services)))

    def run_exclusive(job) -> tuple:
        if not busy.acquire(blocking=False):
            return after_index(h.IndexOutcome(False, "正在索引 an indexing run is in progress "
                                              "— wait for it to finish."))
        try:
            return after_index(job())
        finally:
            busy.release()

    def on_add(path, client_name, progress=gr.Progress()):  # noqa: B008 - Gradio's API
        return run_exclusive(lambda: h.index_folder(services, path, client_name,
                                                    BarProgress(progress)))

    def on_reindex(progress=gr.Progress()):  # noqa: B008 - Gradio's API
        return run_exclusive(lambda: h.reindex_all(services, BarProgress(progress)))

    outputs = [outcome, status, search.client, notice]
    add.click(on_add, [folder, client], outputs, show_progress_on=outcome)
    reindex.click(on_reindex, None, outputs, show_progress_on=outcome)
    refresh.click(overview, None, status)
    tab.select(overview, None, status)


def launch(
    services: Services, host: str = "127.0.0.1", port: int = 7860, open_browser: bool = True
) -> None:
    """Serve the web app until Ctrl+C; on 127.0.0.1 only unless told otherwise."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from ui.server import serve_forever

    serve_forever(services, host, port, open_browser)
