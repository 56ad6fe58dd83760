"""HTML for the Tag review and Cleanup screens: photo cards with their reason and the
buttons that act on them. Same rules as `ui.render`: every user-derived value escaped,
buttons carry data attributes that the page script turns into click events."""

from __future__ import annotations

from ui.handlers_cleanup import CleanupList, GroupView, MemberView, PoorView, TrashView
from ui.handlers_tags import ReviewQueue
from ui.render import button, esc


def _empty(message: str, kind: str) -> str:
    return f'<div class="kz-empty kz-{esc(kind)}">{esc(message)}</div>'


def _img(url: str | None, alt: str) -> str:
    if not url:
        return ""
    return f'<img src="{esc(url)}" alt="{esc(alt)}" loading="lazy" decoding="async">'


# ------------------------------------------------------------------ review
def review(queue: ReviewQueue) -> str:
    if not queue.items:
        return _empty(queue.message, queue.kind)
    key = queue.tag_key or ""
    cards = "".join(
        f'<div class="kz-card-photo" tabindex="0" data-keys="1" data-photo="{s.photo_id}" '
        f'data-tag="{esc(key)}" title="{esc(s.name)}">{_img(s.thumb_url, s.name)}'
        f'<span>{esc(s.client or "无客户 no client")} · {esc(s.day or "")}'
        f'<span class="kz-score"> {s.score:.2f}</span></span>'
        f'<span class="kz-actions">{button("✓ 接受 accept", "accept", photo=s.photo_id, tag=key)}'
        f'{button("✗ 拒绝 reject", "reject", photo=s.photo_id, tag=key)}</span></div>'
        for s in queue.items
    )
    return f'<div class="kz-row kz-review" data-tag="{esc(key)}">{cards}</div>'


# ----------------------------------------------------------------- cleanup
def _member(group: GroupView, m: MemberView) -> str:
    badge = '<span class="kz-badge">建议保留 keeper</span>' if m.keeper else ""
    action = "" if m.keeper else button("改为保留这张 keep this one instead", "keep",
                                        group=group.group_id, keep=m.photo_id)
    return (
        f'<div class="kz-card-photo{" kz-keeper" if m.keeper else ""}" '
        f'data-photo="{m.photo_id}" title="{esc(m.path)}">{_img(m.thumb_url, m.name)}'
        f"<span>{badge} #{m.photo_id} {esc(m.name)}</span>"
        f"<span>{esc(m.client or '无客户 no client')} · {esc(m.day or '')} · "
        f"{esc(m.size_text)}</span><span class=\"kz-reason\">{esc(m.reason)}</span>"
        f'<span class="kz-actions">{action}</span></div>'
    )


def duplicates(listing: CleanupList) -> str:
    if not listing.items:
        return _empty(listing.message, listing.kind)
    parts = []
    for g in listing.items:
        diff = "; ".join(f"{esc(k)}: {esc(', '.join(map(str, v)))}"
                         for k, v in g.differences.items())
        note = f' <span class="kz-bad">不同 differs — {diff}</span>' if diff else ""
        parts.append(
            f'<div class="kz-group" data-group="{esc(g.group_id)}"><div class="kz-group-head">'
            f"<span>{len(g.members)} 张 photos · {esc(g.strictness)}{note}</span>"
            + button("保留建议，其余移到回收站 keep suggested, trash the rest", "resolve",
                     group=g.group_id)
            + f'</div><div class="kz-row">{"".join(_member(g, m) for m in g.members)}</div>'
            "</div>"
        )
    return "".join(parts)


def poor(listing: CleanupList) -> str:
    if not listing.items:
        return _empty(listing.message, listing.kind)
    cards = "".join(_poor_card(p) for p in listing.items)
    return f'<div class="kz-row">{cards}</div>'


def _poor_card(p: PoorView) -> str:
    return (
        f'<div class="kz-card-photo" data-photo="{p.photo_id}" title="{esc(p.path)}">'
        f"{_img(p.thumb_url, p.name)}<span>#{p.photo_id} {esc(p.name)} · "
        f"{esc(p.client or '无客户 no client')}</span>"
        f'<span class="kz-reason">{esc(p.reason)}</span><span class="kz-actions">'
        f'{button("移到回收站 trash", "trash", photo=p.photo_id)}</span></div>'
    )


def trash(listing: CleanupList) -> str:
    if not listing.items:
        return _empty(listing.message, listing.kind)
    cards = "".join(_trash_card(t) for t in listing.items)
    return f'<div class="kz-row">{cards}</div>'


def _trash_card(t: TrashView) -> str:
    return (
        f'<div class="kz-card-photo" data-trash="{t.trash_id}" title="{esc(t.original_path)}">'
        f"{_img(t.thumb_url, t.name)}<span>{esc(t.name)} · "
        f"{esc(t.client or '无客户 no client')}</span>"
        f'<span class="kz-reason">{esc(t.reason or "")}</span>'
        f'<span class="kz-muted">{esc((t.moved_at or "").replace("T", " "))}</span>'
        f'<span class="kz-actions">{button("还原 restore", "restore", trash=t.trash_id)}'
        "</span></div>"
    )
