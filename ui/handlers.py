"""What the web app does, as plain functions over `Services` that return plain data.

Each function makes one call into `indexer` or `search` and turns our exceptions into a
message that says what to do next. Nothing here imports Gradio, so every screen's logic is
tested without a browser; `ui.app` only binds these functions to components and
`ui.render` turns their results into HTML.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from indexer.catalog import Photo, PhotoFilter
from indexer.errors import DECODE_REASONS, KezhaoError
from indexer.pipeline import IndexSummary, Progress, index_paths
from models import ModelError, ModelUnavailableError
from search.query import Hit
from ui.context import Services

DEFAULT_RESULTS = 48
FAILURES_SHOWN = 200
TINY_MODEL_NOTICE = (
    "测试模型 · tiny-test model in use: random weights with NO semantic meaning — results "
    "only show how the app works. Start with --model multilingual for real searches."
)
DATE_SOURCES = {
    "exif": "拍摄时间 camera EXIF",
    "filename": "文件名 file name",
    "mtime": "文件修改时间 file modified time",
}
CLIENT_SOURCES = {
    "cli": "索引时指定 set when indexing",
    "filename": "文件名 file name",
    "folder": "文件夹 folder",
    "manual": "手动修改 set by hand",
}


class FormError(KezhaoError):
    """Something typed into the web form that we cannot use as is."""


# ------------------------------------------------------------------ data
@dataclass(frozen=True)
class Filters:
    """The search form's filters as typed; empty strings mean 'any'."""

    client: str | None = None
    project: str | None = None
    tag: str | None = None
    since: str | None = None
    until: str | None = None

    def to_photo_filter(self) -> PhotoFilter:
        since, until = _day(self.since, "从 From"), _day(self.until, "到 To")
        if since and until and since > until:
            raise FormError("开始日期晚于结束日期 the 'from' date is after the 'to' date — "
                            "swap them")
        return PhotoFilter(
            client=_text(self.client), project=_text(self.project), tag=_text(self.tag),
            since=since, until=until,
        )


@dataclass(frozen=True)
class Query:
    """What the result grid currently shows, so a changed filter re-runs the same question.

    kind: "browse" (latest photos), "text", "example" (an uploaded image) or "similar".
    """

    kind: str = "browse"
    text: str = ""
    image: str | None = None
    photo_id: int | None = None


@dataclass(frozen=True)
class Tile:
    photo_id: int
    name: str
    client: str | None
    project: str | None
    day: str | None
    tags: tuple[str, ...]
    score: float | None
    thumb_url: str
    reason: str | None = None


@dataclass(frozen=True)
class Results:
    """One screen of results; `message` always says what happened or what to do next."""

    tiles: list[Tile]
    message: str
    kind: str = "ok"  # ok | empty | error


@dataclass(frozen=True)
class PhotoDetails:
    photo_id: int
    name: str
    path: str
    folder: str
    client: str | None
    client_source: str | None
    project: str | None
    description: str | None
    taken_at: str | None
    taken_at_source: str | None
    camera: str | None
    dimensions: str | None
    file_size: str
    tags: tuple[tuple[str, str], ...]  # accepted: (key, label)
    suggested: tuple[tuple[str, str, float], ...]  # pending: (key, label, probability)
    text: str | None  # words read in the photo, or why there are none
    preview_url: str
    thumb_url: str


@dataclass(frozen=True)
class FailureRow:
    path: str
    reason: str
    explanation: str
    message: str


@dataclass(frozen=True)
class FolderRow:
    path: str
    client: str | None
    last_scan: str | None
    reachable: bool


@dataclass(frozen=True)
class LibraryStatus:
    library: str
    model_id: str | None
    preset: str
    tiny_model: bool
    searchable: int
    missing: int
    trashed: int
    failed: int
    clients: list[tuple[str, int]]
    folders: list[FolderRow]
    failures: list[FailureRow]
    failure_reasons: dict[str, int]
    index_state: str
    index_vectors: int


@dataclass(frozen=True)
class IndexOutcome:
    ok: bool
    message: str
    summary: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------- helpers
def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _day(value: str | None, label: str) -> date | None:
    text = _text(value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise FormError(f"{label}: {text!r} 不是日期 is not a date — use YYYY-MM-DD, "
                        "e.g. 2024-03-15") from None


def thumb_url(photo_id: int) -> str:
    return f"/thumb/{int(photo_id)}"


def preview_url(photo_id: int) -> str:
    return f"/preview/{int(photo_id)}"


def tag_label(label_zh: str, label_en: str) -> str:
    return label_zh if label_zh == label_en else f"{label_zh} {label_en}"


def _tile(photo: Photo, score: float | None, reason: str | None = None) -> Tile:
    return Tile(
        photo_id=photo.id, name=Path(photo.path).name, client=photo.client,
        project=photo.project, day=(photo.taken_at or "")[:10] or None, tags=photo.tags,
        score=score, thumb_url=thumb_url(photo.id), reason=reason,
    )


def _tiles(hits: list[Hit]) -> list[Tile]:
    return [_tile(h.photo, h.score, h.reason) for h in hits]


def explain_error(err: Exception) -> str:
    """One line for the user, with the next step, for any error we raise on purpose."""
    if isinstance(err, ModelUnavailableError):
        return f"模型未下载 model not downloaded — {err}"
    if isinstance(err, ModelError):
        return f"模型无法加载 the model could not be loaded — {err}"
    return str(err)


def _guarded(fn: Callable[[], Results]) -> Results:
    try:
        return fn()
    except (KezhaoError, ModelError) as err:
        return Results([], explain_error(err), "error")


def model_notice(services: Services) -> str | None:
    """The warning to show on every screen while the meaningless test model is in use."""
    if services.preset == "tiny-test" and services.settings.checkpoint is None:
        return TINY_MODEL_NOTICE
    return None


# ------------------------------------------------------------ choices
def client_choices(services: Services) -> list[tuple[str, str]]:
    """(label with photo count, value) for the client filter; '' is 'all clients'."""
    clients = services.library.catalog.clients()
    total = sum(c.photos for c in clients)
    return [(f"全部客户 All clients ({total})", "")] + [
        (f"{c.name} ({c.photos})", c.name) for c in clients
    ]


def project_choices(services: Services, client: str | None = None) -> list[tuple[str, str]]:
    projects = services.library.catalog.projects(_text(client))
    return [("全部项目 All projects", "")] + [(f"{name} ({n})", name) for name, n in projects]


# ------------------------------------------------------------ search
def _no_results(services: Services, flt: PhotoFilter) -> Results:
    """Why the grid is empty, and what to do about it."""
    catalog = services.library.catalog
    if catalog.searchable_count() == 0:
        return Results([], "图库里还没有照片 No photos indexed yet — add a folder in the "
                       "图库 Library tab.", "empty")
    if flt.client is not None and not len(catalog.photo_ids_matching(
            PhotoFilter(client=flt.client))):
        return Results([], f"客户 {flt.client} 还没有照片 no photos for client {flt.client} "
                       "yet — index a folder with their photos in the 图库 Library tab.",
                       "empty")
    return Results([], "没有符合条件的照片 No photos match these filters — remove a filter "
                   "or widen the dates.", "empty")


def _prepared(services: Services, filters: Filters) -> PhotoFilter:
    flt = filters.to_photo_filter()
    catalog = services.library.catalog
    if flt.client is not None and not catalog.client_exists(flt.client):
        known = "、".join(c.name for c in catalog.clients()[:10]) or "—"
        raise FormError(f"客户 {flt.client} 还没有照片 no photos for client {flt.client} yet — "
                        f"index a folder with their photos (known clients: {known}).")
    return flt


def browse(services: Services, filters: Filters, k: int = DEFAULT_RESULTS) -> Results:
    """The latest photos matching the filters: the first screen, before any query."""

    def run() -> Results:
        flt = _prepared(services, filters)
        photos = services.library.catalog.list_photos(flt, limit=k)
        if not photos:
            return _no_results(services, flt)
        total = _count(services, flt)
        shown = f"{len(photos)} / {total}" if total > len(photos) else str(total)
        return Results([_tile(p, None) for p in photos],
                       f"最新照片 Latest photos — {shown}. 输入文字或拖入照片来搜索 Type words "
                       "or drop a photo to search.")

    return _guarded(run)


def _count(services: Services, flt: PhotoFilter) -> int:
    if flt.is_empty():
        # The loaded vector index holds exactly the searchable photos: counting them in
        # SQL would read every embedding page of a large catalog.
        index = services.search.vector_index()
        return index.size if index is not None else 0
    return len(services.library.catalog.photo_ids_matching(flt))


def search_text(
    services: Services, text: str, filters: Filters, k: int = DEFAULT_RESULTS
) -> Results:
    """Photos matching words in Chinese or English, within the filters: what CLIP sees
    and, where the text pass has run, the words read in the photos, as one ranking."""
    from search.hybrid import HybridSearch

    def run() -> Results:
        flt = _prepared(services, filters)
        hits = HybridSearch(services.search).search(text, flt, k)
        if not hits:
            return _no_results(services, flt)
        return Results(_tiles(hits), f"“{' '.join(text.split())}” — {len(hits)} 张照片 "
                       "photos, best match first.")

    return _guarded(run)


def search_example(
    services: Services, image_path: str | None, filters: Filters, k: int = DEFAULT_RESULTS
) -> Results:
    """Photos that look like an uploaded image (it need not be in the library)."""

    def run() -> Results:
        if not image_path:
            raise FormError("先拖入或选择一张照片 drop or choose a photo first")
        flt = _prepared(services, filters)
        hits = services.search.by_image(Path(image_path), flt, k)
        if not hits:
            return _no_results(services, flt)
        return Results(_tiles(hits), f"像这张示例照片的 {len(hits)} 张照片 photos that look "
                       "like your example, best match first.")

    return _guarded(run)


def find_similar(
    services: Services, photo_id: int, filters: Filters, k: int = DEFAULT_RESULTS
) -> Results:
    """Photos most like an indexed one, from its stored vector (no model, no decoding)."""

    def run() -> Results:
        flt = _prepared(services, filters)
        hits = services.search.similar(int(photo_id), flt, k)
        if not hits:
            return _no_results(services, flt)
        return Results(_tiles(hits), f"与照片 #{int(photo_id)} 相似 Similar to photo "
                       f"#{int(photo_id)} — {len(hits)} 张 photos.")

    return _guarded(run)


def run_query(
    services: Services, query: Query, filters: Filters, k: int = DEFAULT_RESULTS
) -> Results:
    """Re-run whatever the grid shows with new filters."""
    if query.kind == "text" and query.text.strip():
        return search_text(services, query.text, filters, k)
    if query.kind == "example" and query.image:
        return search_example(services, query.image, filters, k)
    if query.kind == "similar" and query.photo_id is not None:
        return find_similar(services, query.photo_id, filters, k)
    return browse(services, filters, k)


# ------------------------------------------------------------ details
def _size_text(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


def _searchable_photo(services: Services, photo_id: int | str | None) -> Photo:
    try:
        pid = int(str(photo_id))
    except ValueError:
        raise FormError(f"不是照片编号 not a photo id: {photo_id!r}") from None
    photo = services.library.catalog.get_photo(pid)
    if photo is None or photo.status != "ok":
        raise FormError(f"照片 #{pid} 已不在图库中 photo #{pid} is no longer in the library — "
                        "search again.")
    return photo


def _text_in_photo(services: Services, photo_id: int) -> str | None:
    read = services.library.catalog.ocr_read(photo_id)
    if read is None:
        return None
    if not read.current:
        return "照片已改变，需重新识别 the photo changed since its text was read"
    if read.state == "failed":
        return f"无法识别 could not be read: {read.message}"
    return read.full_text or "未发现文字 no text found"


def photo_details(services: Services, photo_id: int | str) -> PhotoDetails:
    """Everything the details panel shows about one photo. Raises FormError if it is gone."""
    photo = _searchable_photo(services, photo_id)
    catalog = services.library.catalog
    labels = {t.key: tag_label(t.label_zh, t.label_en) for t in catalog.tags()}
    pending = catalog.pending_suggestions(PhotoFilter(photo_ids=(photo.id,)), None, 20, 0)
    suggested = tuple(
        (s.tag_key, tag_label(s.label_zh, s.label_en), s.score)
        for s in sorted(pending, key=lambda s: -s.score)
    )
    camera = " ".join(x for x in (photo.camera_make, photo.camera_model) if x) or None
    dims = f"{photo.width} × {photo.height}" if photo.width and photo.height else None
    if dims and photo.format:
        dims = f"{dims} {photo.format}"
    return PhotoDetails(
        photo_id=photo.id, name=Path(photo.path).name, path=photo.path,
        folder=str(Path(photo.path).parent), client=photo.client,
        client_source=photo.client_source, project=photo.project,
        description=photo.description, taken_at=photo.taken_at,
        taken_at_source=photo.taken_at_source, camera=camera, dimensions=dims,
        file_size=_size_text(photo.size),
        tags=tuple((key, labels.get(key, key)) for key in photo.tags), suggested=suggested,
        text=_text_in_photo(services, photo.id), preview_url=preview_url(photo.id),
        thumb_url=thumb_url(photo.id),
    )


def containing_folder(services: Services, photo_id: int | str) -> str:
    """The folder holding the photo, for the user to copy into a file manager."""
    return str(Path(_searchable_photo(services, photo_id).path).parent)


def change_client(services: Services, photo_id: int | str, client: str | None) -> str:
    """Correct the client of one photo by hand; the change survives re-indexing."""
    photo = _searchable_photo(services, photo_id)
    name = _text(client)
    if name is not None and len(name) > 200:
        raise FormError("客户名太长 client name is too long (at most 200 characters)")
    services.library.catalog.set_client([photo.id], name)
    if name is None:
        return f"照片 #{photo.id} 已移除客户 photo #{photo.id} now has no client."
    return f"照片 #{photo.id} 的客户已改为 {name} · client of photo #{photo.id} set to {name}."


# ------------------------------------------------------------ library
def library_status(services: Services) -> LibraryStatus:
    """Folders, counts, failures with reasons and the model: the Library screen."""
    catalog = services.library.catalog
    counts = catalog.status_counts()
    index = services.search.vector_index()
    health = services.search.health
    failures = catalog.failures()
    return LibraryStatus(
        library=str(services.library.root),
        model_id=catalog.model_id(),
        preset=services.preset,
        tiny_model=model_notice(services) is not None,
        searchable=counts.get("ok", 0),
        missing=counts.get("missing", 0),
        trashed=counts.get("trashed", 0),
        failed=counts.get("failed", 0),
        clients=[(c.name, c.photos) for c in catalog.clients()],
        folders=[
            FolderRow(r.path, r.client, r.last_scan_at, os.path.isdir(r.path))
            for r in catalog.roots()
        ],
        failures=[
            FailureRow(f.path, f.reason, DECODE_REASONS.get(f.reason, f.reason), f.message)
            for f in failures[:FAILURES_SHOWN]
        ],
        failure_reasons=catalog.failure_reasons(),
        index_state=health.state if health else "empty",
        index_vectors=index.size if index else 0,
    )


def _summary_line(summary: IndexSummary) -> str:
    return (f"新增 new {summary.new} · 修改 changed {summary.changed} · 移动 moved "
            f"{summary.moved} · 未变 unchanged {summary.unchanged} · 缺失 missing "
            f"{summary.missing} · 失败 failed {summary.failed}")


def _outcome(summary: IndexSummary, what: str) -> IndexOutcome:
    parts = [f"{what}: {_summary_line(summary)}."]
    for path, reason in summary.skipped_roots:
        parts.append(f"跳过 skipped {path}: {reason}.")
    if summary.failed:
        parts.append("无法索引的文件见下方列表 files that could not be indexed are listed "
                     "below.")
    return IndexOutcome(True, " ".join(parts), summary.as_dict())


def index_folder(
    services: Services, folder: str | None, client: str | None = None,
    progress: Progress | None = None,
) -> IndexOutcome:
    """Add a folder of this computer to the library and index it (incrementally)."""
    text = _text(folder)
    if text is None:
        return IndexOutcome(False, "请输入文件夹路径 type the full path of a folder on this "
                            "computer, e.g. /home/me/客户照片")
    path = Path(text).expanduser()
    if not path.is_dir():
        return IndexOutcome(False, f"找不到文件夹 folder not found: {text} — type the full "
                            "path of a folder on this computer.")
    try:
        summary = index_paths(services.library, services.encoder(), [path],
                              client=_text(client), progress=progress)
    except (KezhaoError, ModelError) as err:
        return IndexOutcome(False, explain_error(err))
    return _outcome(summary, f"已索引 indexed {path}")


def reindex_all(services: Services, progress: Progress | None = None) -> IndexOutcome:
    """Re-scan every known folder: new and changed photos are indexed, gone ones marked."""
    roots = services.library.catalog.roots()
    if not roots:
        return IndexOutcome(False, "还没有文件夹 no folders yet — add one above first.")
    total = IndexSummary()
    try:
        encoder = services.encoder()
        for root in roots:
            # Each folder keeps the client it was added with.
            part = index_paths(services.library, encoder, [Path(root.path)],
                               client=root.client, progress=progress)
            _add_summary(total, part)
    except (KezhaoError, ModelError) as err:
        return IndexOutcome(False, explain_error(err))
    return _outcome(total, f"已重新索引 re-indexed {len(roots)} 个文件夹 folder(s)")


def _add_summary(total: IndexSummary, part: IndexSummary) -> None:
    for name in ("new", "changed", "moved", "unchanged", "missing", "failed",
                 "reused_vectors", "encoded"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.failures.extend(part.failures)
    total.skipped_roots.extend(part.skipped_roots)
    total.photo_ids.extend(part.photo_ids)
