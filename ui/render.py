"""HTML for the web app's custom parts (result grid, details, library overview), the
shared stylesheet, and the one script that turns clicks and keys into Gradio events.

Pure functions from the plain data in `ui.handlers` to strings. Every value that comes from
a user's files (client and folder names, paths, tags) goes through `esc`, because a folder
can be called ``<img onerror=…>``. The strings are given to `gr.HTML` as its value, which
Gradio inserts as is (only its template, never the value, is evaluated as a JS template), so
escaping here is the whole story.
"""

from __future__ import annotations

import html

from ui.handlers import (
    CLIENT_SOURCES,
    DATE_SOURCES,
    LibraryStatus,
    PhotoDetails,
    Results,
    Tile,
)


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def notice(text: str | None) -> str:
    if not text:
        return ""
    return f'<div class="kz-notice" role="status">⚠ {esc(text)}</div>'


def status_line(text: str, kind: str = "ok") -> str:
    """One line saying what happened; kind: ok | done | empty | error."""
    return f'<div class="kz-message kz-{esc(kind)}">{esc(text)}</div>'


def message(result: object) -> str:
    """The status line of any handler result (`.message` plus `.kind` or `.ok`)."""
    kind = getattr(result, "kind", None) or ("done" if getattr(result, "ok", True) else "error")
    return status_line(str(getattr(result, "message", "")), kind)


def button(label: str, action: str, **data: object) -> str:
    """A button the page script turns into a click event carrying its data attributes."""
    attrs = "".join(f' data-{esc(k.replace("_", "-"))}="{esc(v)}"' for k, v in data.items())
    return (f'<button type="button" class="kz-btn kz-{esc(action)}" data-action="{esc(action)}"'
            f"{attrs}>{esc(label)}</button>")


def _tile(tile: Tile) -> str:
    meta = " · ".join(esc(x) for x in (tile.client or "无客户 no client", tile.day) if x)
    tags = "".join(f'<span class="kz-tag">{esc(t)}</span>' for t in tile.tags[:4])
    score = (f'<span class="kz-score" title="相似度 similarity">{tile.score:.3f}</span>'
             if tile.score is not None else "")
    title = f"{tile.name} — {tile.reason}" if tile.reason else tile.name
    return (
        f'<button type="button" class="kz-tile" data-action="open" '
        f'data-photo="{tile.photo_id}" title="{esc(title)}">'
        f'<img src="{esc(tile.thumb_url)}" alt="{esc(tile.name)}" loading="lazy" '
        f'decoding="async">'
        f'<span class="kz-meta"><span class="kz-client">{meta}</span>{score}</span>'
        f'<span class="kz-tags">{tags}</span></button>'
    )


def gallery(results: Results) -> str:
    if not results.tiles:
        return f'<div class="kz-empty kz-{esc(results.kind)}">{esc(results.message)}</div>'
    return '<div class="kz-grid">' + "".join(_tile(t) for t in results.tiles) + "</div>"


def _row(label: str, value: str | None, extra: str | None = None) -> str:
    if not value:
        return ""
    more = f' <span class="kz-muted">({esc(extra)})</span>' if extra else ""
    return f"<tr><th>{esc(label)}</th><td>{esc(value)}{more}</td></tr>"


def details(d: PhotoDetails) -> str:
    tags = "".join(f'<span class="kz-tag">{esc(label)}</span>' for _key, label in d.tags) \
        or '<span class="kz-muted">—</span>'
    suggested = "".join(
        f'<span class="kz-tag kz-suggested" data-tag="{esc(key)}">{esc(label)} {score:.2f} '
        + button("✓", "accept-tag", photo=d.photo_id, tag=key)
        + button("✗", "reject-tag", photo=d.photo_id, tag=key) + "</span>"
        for key, label, score in d.suggested
    ) or '<span class="kz-muted">—</span>'
    text = (f"<tr><th>照片中的文字 Text</th><td class=\"kz-text\">{esc(d.text)}</td></tr>"
            if d.text else "")
    rows = "".join((
        _row("文件 File", d.name),
        _row("路径 Path", d.path),
        _row("客户 Client", d.client or "无 none",
             CLIENT_SOURCES.get(d.client_source or "", d.client_source)),
        _row("项目 Project", d.project),
        _row("说明 Description", d.description),
        _row("日期 Date", (d.taken_at or "").replace("T", " "),
             DATE_SOURCES.get(d.taken_at_source or "", d.taken_at_source)),
        _row("相机 Camera", d.camera),
        _row("尺寸 Size", " · ".join(x for x in (d.dimensions, d.file_size) if x)),
    ))
    return (
        f'<div class="kz-details" data-photo="{d.photo_id}">'
        f'<a class="kz-preview" href="{esc(d.preview_url)}" target="_blank" rel="noopener">'
        f'<img src="{esc(d.preview_url)}" alt="{esc(d.name)}"></a>'
        f'<h3>#{d.photo_id} {esc(d.name)}</h3><table class="kz-facts">{rows}'
        f"<tr><th>已确认标签 Tags</th><td>{tags}</td></tr>"
        f"<tr><th>建议标签 Suggested</th><td>{suggested}</td></tr>{text}</table></div>"
    )


def library(status: LibraryStatus) -> str:
    model = status.model_id or f"{status.preset} (尚未索引 nothing indexed yet)"
    warn = ' <span class="kz-bad">no semantics</span>' if status.tiny_model else ""
    cards = "".join(
        f'<div class="kz-card"><b>{n}</b><span>{esc(label)}</span></div>'
        for n, label in (
            (status.searchable, "可搜索 searchable"),
            (len(status.clients), "客户 clients"),
            (status.missing, "缺失 missing"),
            (status.trashed, "回收站 in trash"),
            (status.failed, "失败 failed"),
        )
    )
    folders = "".join(
        f"<tr><td>{esc(f.path)}</td><td>{esc(f.client or '—')}</td>"
        f"<td>{esc((f.last_scan or '—').replace('T', ' ')[:19])}</td>"
        f"<td>{'✓' if f.reachable else '<span class=kz-bad>不可达 unreachable</span>'}</td></tr>"
        for f in status.folders
    ) or '<tr><td colspan="4" class="kz-muted">还没有文件夹 no folders yet — add one below' \
         '</td></tr>'
    reasons = " · ".join(f"{esc(r)} × {n}" for r, n in sorted(status.failure_reasons.items()))
    failures = "".join(
        f"<tr><td>{esc(f.path)}</td><td>{esc(f.reason)}</td><td>{esc(f.message)}</td></tr>"
        for f in status.failures
    )
    more = status.failed - len(status.failures)
    failure_block = (
        f"<h4>无法索引的文件 Files that could not be indexed ({status.failed}): {reasons}</h4>"
        f'<table class="kz-table"><tr><th>文件 File</th><th>原因 Reason</th>'
        f"<th>说明 Details</th></tr>{failures}</table>"
        + (f'<p class="kz-muted">… +{more} (kezhao failures)</p>' if more > 0 else "")
        if status.failures else '<p class="kz-muted">没有失败的文件 no failures</p>'
    )
    return (
        f'<div class="kz-library"><div class="kz-cards">{cards}</div>'
        f'<p><b>模型 Model</b> {esc(model)}{warn} · <b>向量索引 Index</b> '
        f"{esc(status.index_state)}, {status.index_vectors} · <b>图库位置 Library</b> "
        f"<code>{esc(status.library)}</code></p>"
        f'<h4>已索引的文件夹 Indexed folders</h4><table class="kz-table"><tr>'
        f"<th>文件夹 Folder</th><th>客户 Client</th><th>上次扫描 Last scan</th><th></th></tr>"
        f"{folders}</table>{failure_block}</div>"
    )


CSS = """
.kz-header h1 { margin: 0; font-size: 1.6rem; }
.kz-header p { margin: 2px 0 0; color: var(--body-text-color-subdued); }
.kz-notice { background: #fff4e5; color: #8a4b00; border: 1px solid #f5c27a;
  border-radius: 8px; padding: 8px 12px; font-size: 0.92rem; }
.kz-message { padding: 4px 2px; color: var(--body-text-color-subdued); }
.kz-message.kz-error, .kz-empty.kz-error { color: #b42318; }
.kz-empty { padding: 48px 16px; text-align: center; color: var(--body-text-color-subdued);
  border: 1px dashed var(--border-color-primary); border-radius: 12px; }
.kz-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr));
  gap: 12px; }
.kz-tile { display: flex; flex-direction: column; gap: 4px; padding: 6px; margin: 0;
  border: 1px solid var(--border-color-primary); border-radius: 10px; cursor: pointer;
  background: var(--background-fill-primary); text-align: left; font: inherit; }
.kz-tile:hover, .kz-tile:focus-visible { border-color: var(--color-accent);
  box-shadow: 0 2px 8px rgba(0,0,0,.12); }
.kz-tile img { width: 100%; aspect-ratio: 4 / 3; object-fit: cover; border-radius: 6px;
  background: var(--background-fill-secondary); }
.kz-meta { display: flex; justify-content: space-between; gap: 6px; font-size: 0.85rem; }
.kz-client { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.kz-score { color: var(--body-text-color-subdued); font-variant-numeric: tabular-nums; }
.kz-tags { display: flex; flex-wrap: wrap; gap: 4px; min-height: 2px; }
.kz-tag { background: var(--color-accent-soft); border-radius: 999px; padding: 0 8px;
  font-size: 0.78rem; }
.kz-suggested { background: var(--background-fill-secondary); border: 1px dashed
  var(--border-color-primary); }
.kz-preview img { width: 100%; max-height: 420px; object-fit: contain; border-radius: 8px;
  background: var(--background-fill-secondary); }
.kz-details h3 { margin: 8px 0 4px; font-size: 1.05rem; word-break: break-all; }
.kz-facts, .kz-table { width: 100%; border-collapse: collapse; font-size: 0.9rem;
  border: none !important; }
.kz-facts th, .kz-table th { text-align: left; white-space: nowrap; padding: 4px 10px 4px 0;
  color: var(--body-text-color-subdued); font-weight: 600; vertical-align: top;
  border: none !important; background: none !important; }
.kz-facts td, .kz-table td { padding: 4px 10px 4px 0; word-break: break-all;
  border: none !important; }
.kz-facts tr, .kz-table tr { border: none !important;
  border-bottom: 1px solid var(--border-color-primary) !important; }
.kz-muted { color: var(--body-text-color-subdued); }
.kz-bad { color: #b42318; }
.kz-cards { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 8px; }
.kz-card { border: 1px solid var(--border-color-primary); border-radius: 10px;
  padding: 10px 16px; min-width: 110px; display: flex; flex-direction: column; }
.kz-card b { font-size: 1.5rem; }
.kz-btn { border: 1px solid var(--border-color-primary); background:
  var(--background-fill-primary); border-radius: 6px; padding: 1px 8px; margin-left: 4px;
  cursor: pointer; font: inherit; font-size: 0.85rem; }
.kz-btn:hover { border-color: var(--color-accent); }
.kz-accept, .kz-accept-tag, .kz-restore, .kz-keep { color: #067647; }
.kz-reject, .kz-reject-tag, .kz-trash, .kz-resolve { color: #b42318; }
.kz-message.kz-done { color: #067647; font-weight: 600; }
.kz-text { white-space: pre-line; }
.kz-group { border: 1px solid var(--border-color-primary); border-radius: 12px;
  padding: 10px; margin-bottom: 12px; }
.kz-group-head { display: flex; justify-content: space-between; align-items: center;
  gap: 8px; margin-bottom: 8px; font-size: 0.9rem; }
.kz-row { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr));
  gap: 10px; }
.kz-card-photo { border: 1px solid var(--border-color-primary); border-radius: 10px;
  padding: 6px; display: flex; flex-direction: column; gap: 4px; font-size: 0.85rem;
  background: var(--background-fill-primary); }
.kz-card-photo:focus { outline: 2px solid var(--color-accent); }
.kz-card-photo img { width: 100%; aspect-ratio: 4 / 3; object-fit: cover; border-radius: 6px;
  background: var(--background-fill-secondary); }
.kz-card-photo.kz-keeper { border: 2px solid #12b76a; }
.kz-badge { display: inline-block; border-radius: 999px; padding: 0 8px; font-size: 0.78rem;
  background: #d1fadf; color: #05603a; font-weight: 600; }
.kz-reason { color: var(--body-text-color-subdued); }
.kz-actions { display: flex; gap: 4px; flex-wrap: wrap; }
.kz-actions .kz-btn { margin-left: 0; }
#kz-since .timebox input, #kz-until .timebox input { min-width: 0; width: 0; flex: 1 1 auto; }
"""

ACTION_JS = """
const send = (el, extra) => trigger('click', Object.assign({}, el.dataset, extra || {}));
element.addEventListener('click', (event) => {
  const el = event.target.closest('[data-action]');
  if (!el || !element.contains(el)) return;
  event.stopPropagation();
  send(el);
});
element.addEventListener('keydown', (event) => {
  const item = event.target.closest('[data-keys]');
  if (!item || !element.contains(item) || event.ctrlKey || event.metaKey || event.altKey) return;
  const action = {a: 'accept', r: 'reject'}[event.key.toLowerCase()];
  if (!action) return;
  event.preventDefault();
  send(item, {action});
});
"""
"""Every custom HTML part uses this: an element with ``data-action`` sends a click event
with all its ``data-*`` values; in the review queue, keys A and R accept or reject the
focused photo."""

REVIEW_JS = ACTION_JS + """
watch('value', () => {
  if (document.activeElement === document.body || !document.activeElement) {
    const first = element.querySelector('[data-keys]');
    if (first) first.focus({preventScroll: true});
  }
});
"""
