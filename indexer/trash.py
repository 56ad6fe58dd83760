"""The library trash: the only place where kezhao changes the user's photo folders.

A photo is moved, never deleted: into ``<library>/trash/<entry>/<name>`` with a plain
rename on the same filesystem, or by copy, verify (content hash) and only then remove the
original across filesystems. Each move is written to the catalog's trash journal *before*
a byte moves, so a crash at any point is completed or rolled back by `recover_interrupted`,
which `open_library` runs on every start. Restoring puts the same bytes back at the
original path and never overwrites a file that has appeared there since. Deleting for
good happens only in `empty_trash`, an explicit command.

Safety rules: kezhao only moves files inside the folders it indexes (the catalog's roots),
never a symbolic link, and never through a folder link that leads out of a root.

Journal states:

    moving      journalled; the file may be at its origin, half copied, or in the trash
    trashed     in the trash; the photo is hidden from search, tags and duplicates
    restoring   journalled; on its way back
    restored    back at its original path, byte-identical
    emptying    journalled; being deleted for good
    emptied     deleted for good
    rolled_back an interrupted move was undone: the file never left its folder
    lost        the file vanished from both places while a move was interrupted
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.errors import KezhaoError

if TYPE_CHECKING:
    from indexer.library import Library

log = logging.getLogger(__name__)

_PENDING = ("moving", "restoring", "emptying")
_LOCK_NAME = ".journal.lock"
_LOCK_WAIT_S = 60.0
_PARTIAL_SUFFIX = ".kezhao-partial"


class TrashError(KezhaoError):
    """A trash request refused or failed; the message says why and what to do."""


@dataclass(frozen=True)
class TrashEntry:
    """One journal entry: a photo moved to the trash (and maybe restored or emptied)."""

    id: int
    photo_id: int | None
    original_path: str
    trash_path: str
    size: int | None
    content_hash: str | None
    state: str
    reason: str | None
    journaled_at: str
    moved_at: str | None
    restored_at: str | None
    emptied_at: str | None
    client: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrashReport:
    """What a batch operation did: entries handled and (id, one-line reason) refusals."""

    done: list[TrashEntry] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "done": [e.as_dict() for e in self.done],
            "skipped": [{"id": i, "message": m} for i, m in self.skipped],
        }


# ------------------------------------------------------------------ helpers
def _entry(row: dict | None) -> TrashEntry | None:
    return TrashEntry(**row) if row else None


def _hash(path: Path) -> str:
    from indexer.pipeline import content_hash  # lazily: the pipeline pulls in image code

    return content_hash(path)


def _partial(path: Path) -> Path:
    """Where a cross-filesystem copy is written before it is renamed into place."""
    return path.with_name("." + path.name + _PARTIAL_SUFFIX)


def _same_filesystem(a: Path, b: Path) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _within(path: str | Path, folder: str | Path) -> bool:
    path, folder = os.path.normpath(path), os.path.normpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _journal_lock(library: Library, *, wait: bool = True) -> Iterator[bool]:
    """One process at a time moves files of a library (an OS lock, released by a crash).
    Yields False when `wait` is off and another process holds it."""
    import fcntl

    fd = os.open(library.trash_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + (_LOCK_WAIT_S if wait else 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    if not wait:
                        yield False
                        return
                    raise TrashError(
                        "another kezhao is moving files of this library; try again shortly"
                    ) from None
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)


def _root_of(library: Library, path: Path) -> Path:
    """The registered root holding `path`, checked so that no folder link on the way
    leads outside it. Raises TrashError otherwise."""
    path = Path(os.path.normpath(os.path.abspath(path)))
    for root in library.catalog.roots():
        if not _within(path, root.path) or os.path.normpath(root.path) == str(path):
            continue
        existing = path.parent
        while not os.path.lexists(existing) and existing != existing.parent:
            existing = existing.parent
        if not _within(os.path.realpath(existing), os.path.realpath(root.path)):
            raise TrashError(
                f"{path} leads outside the indexed folder {root.path} through a link; "
                "kezhao never follows links out of indexed folders"
            )
        return Path(root.path)
    raise TrashError(
        f"{path} is not inside a folder kezhao indexes; kezhao only moves files in "
        "indexed folders"
    )


def _copy_verified(src: Path, dst: Path, digest: str | None) -> None:
    """Copy `src` to `dst` (which must not exist) through a partial file, checking the
    copy's content hash before it takes its final name. Keeps the modification time."""
    partial = _partial(dst)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(partial)
    fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        with os.fdopen(fd, "rb", closefd=False) as reader, open(partial, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
            writer.flush()
            os.fsync(writer.fileno())
    finally:
        os.close(fd)
    shutil.copystat(src, partial, follow_symlinks=False)
    if digest is not None and _hash(partial) != digest:
        os.unlink(partial)
        raise TrashError(f"copy of {src} did not match the original; nothing was moved")
    _place_without_overwrite(partial, dst)
    _fsync_dir(dst.parent)


def _place_without_overwrite(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` on one filesystem, failing if `dst` exists (a hard link then
    unlink is atomic about that; filesystems without hard links fall back to a checked
    rename)."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK,
                             errno.ENOSYS, errno.EACCES):
            raise
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "file exists", str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def _move(src: Path, dst: Path, digest: str | None) -> None:
    """Move one file without ever overwriting `dst` and without losing a byte."""
    if _same_filesystem(src.parent, dst.parent):
        _place_without_overwrite(src, dst)
    else:
        _copy_verified(src, dst, digest)
        os.unlink(src)
    _fsync_dir(dst.parent)
    _fsync_dir(src.parent)


def _make_parents(root: Path, folder: Path) -> None:
    """Recreate missing folders below an indexed root (a restore into a folder that was
    removed since), refusing links that lead out of the root."""
    if not _within(folder, root):
        raise TrashError(f"{folder} is not inside {root}")
    folder.mkdir(parents=True, exist_ok=True)
    if not _within(os.path.realpath(folder), os.path.realpath(root)):
        raise TrashError(f"{folder} leads outside the indexed folder {root} through a link")


# ------------------------------------------------------------ moving to trash
def trash_photo(library: Library, photo_id: int, reason: str | None = None) -> TrashEntry:
    """Move one photo's file into the library trash; see the module docstring."""
    with _journal_lock(library):
        return _trash_one(library, int(photo_id), reason)


def trash_photos(
    library: Library, photo_ids: Sequence[int], reason: str | None = None
) -> TrashReport:
    """Move several photos to the trash; one refusal does not stop the others."""
    report = TrashReport()
    with _journal_lock(library):
        for photo_id in photo_ids:
            try:
                report.done.append(_trash_one(library, int(photo_id), reason))
            except TrashError as err:
                report.skipped.append((int(photo_id), str(err)))
    return report


def _trash_one(library: Library, photo_id: int, reason: str | None) -> TrashEntry:
    catalog = library.catalog
    photo = catalog.get_photo(photo_id)
    if photo is None:
        raise TrashError(f"no photo with id {photo_id}")
    if photo.status == "trashed":
        raise TrashError(f"photo #{photo_id} is already in the trash")
    if photo.status != "ok":
        raise TrashError(f"photo #{photo_id} is {photo.status}: its file is not there to move")
    src = Path(photo.path)
    _root_of(library, src)
    try:
        info = os.lstat(src)
    except OSError:
        raise TrashError(f"{src} is gone; run `kezhao index` to update the catalog") from None
    if stat.S_ISLNK(info.st_mode):
        raise TrashError(
            f"{src} is a symbolic link; kezhao never moves or follows links - "
            "handle it by hand"
        )
    if not stat.S_ISREG(info.st_mode):
        raise TrashError(f"{src} is not a regular file")
    try:
        digest = _hash(src)
    except OSError as err:
        raise TrashError(f"cannot read {src}: {err.strerror}") from None
    if digest != photo.content_hash:
        raise TrashError(
            f"{src} changed since it was indexed; run `kezhao index` and look again"
        )
    relative = Path("trash") / f"{photo_id}-{secrets.token_hex(4)}" / src.name
    dst = library.root / relative
    trash_id = catalog.journal_trash(
        photo_id, str(src), str(relative), info.st_size, digest, reason
    )
    try:
        dst.parent.mkdir(parents=True, exist_ok=False)
        _move(src, dst, digest)
    except (OSError, TrashError) as err:
        if os.path.lexists(dst) and not os.path.lexists(src):
            catalog.finish_trash(trash_id)  # it moved; the error came after
            return _entry(catalog.trash_entry(trash_id))
        _undo_move_to_trash(library, trash_id, src, dst)
        message = err.strerror if isinstance(err, OSError) else str(err)
        raise TrashError(f"could not move {src} to the trash: {message}") from None
    catalog.finish_trash(trash_id)
    return _entry(catalog.trash_entry(trash_id))


def _undo_move_to_trash(library: Library, trash_id: int, src: Path, dst: Path) -> None:
    """The original is still in place: drop our partial or complete copy of it."""
    for leftover in (_partial(dst), dst):
        if os.path.lexists(src) and _is_regular_file(leftover):
            os.unlink(leftover)
    with contextlib.suppress(OSError):
        dst.parent.rmdir()
    library.catalog.set_trash_state(trash_id, "rolled_back", ("moving",))


# -------------------------------------------------------------- restoring
def restore(library: Library, trash_id: int) -> TrashEntry:
    """Put a trashed photo back at its original path, byte-identical."""
    with _journal_lock(library):
        return _restore_one(library, int(trash_id))


def restore_all(library: Library) -> TrashReport:
    """Restore everything in the trash; entries that cannot go back are reported."""
    report = TrashReport()
    with _journal_lock(library):
        for row in library.catalog.trash_entries(("trashed",)):
            try:
                report.done.append(_restore_one(library, row["id"]))
            except TrashError as err:
                report.skipped.append((row["id"], str(err)))
    return report


def _restore_one(library: Library, trash_id: int) -> TrashEntry:
    catalog = library.catalog
    entry = _entry(catalog.trash_entry(trash_id))
    if entry is None:
        raise TrashError(f"no trash entry {trash_id}; see `kezhao trash list`")
    if entry.state != "trashed":
        raise TrashError(f"trash entry {trash_id} is {entry.state}, not in the trash")
    src = library.root / entry.trash_path
    dst = Path(entry.original_path)
    if not _is_regular_file(src):
        raise TrashError(f"the trashed file {src} is missing; it cannot be restored")
    root = _root_of(library, dst)
    if os.path.lexists(dst):
        raise TrashError(
            f"cannot restore to {dst}: another file is there now; move it away and retry"
        )
    _make_parents(root, dst.parent)
    catalog.set_trash_state(trash_id, "restoring", ("trashed",))
    try:
        _move(src, dst, entry.content_hash)
    except FileExistsError:
        catalog.set_trash_state(trash_id, "trashed", ("restoring",))
        raise TrashError(
            f"cannot restore to {dst}: another file is there now; move it away and retry"
        ) from None
    except (OSError, TrashError) as err:
        if os.path.lexists(dst) and not os.path.lexists(src):
            catalog.finish_restore(trash_id)
            return _entry(catalog.trash_entry(trash_id))
        with contextlib.suppress(OSError):
            if _is_regular_file(_partial(dst)):
                os.unlink(_partial(dst))
        catalog.set_trash_state(trash_id, "trashed", ("restoring",))
        message = err.strerror if isinstance(err, OSError) else str(err)
        raise TrashError(f"could not restore {dst}: {message}") from None
    with contextlib.suppress(OSError):
        src.parent.rmdir()
    catalog.finish_restore(trash_id)
    return _entry(catalog.trash_entry(trash_id))


# ------------------------------------------------------------ listing, emptying
def list_trash(library: Library) -> list[TrashEntry]:
    """What is in the trash now, oldest first."""
    return [TrashEntry(**row) for row in library.catalog.trash_entries(("trashed",))]


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '2w' or '0d' (everything) into a duration."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhw])\s*", text or "")
    if not match:
        raise TrashError(f"not an age: {text!r} (use e.g. 30d, 12h or 2w)")
    amount, unit = int(match.group(1)), match.group(2)
    return {"h": timedelta(hours=amount), "d": timedelta(days=amount),
            "w": timedelta(weeks=amount)}[unit]


def empty_trash(
    library: Library, older_than: timedelta, *, now: datetime | None = None
) -> list[TrashEntry]:
    """Delete for good the files that went into the trash at least `older_than` ago —
    the only call in kezhao that deletes a photo."""
    cutoff = (now or datetime.now(UTC)) - older_than
    emptied: list[TrashEntry] = []
    with _journal_lock(library):
        for row in library.catalog.trash_entries(("trashed",)):
            moved = datetime.fromisoformat(row["moved_at"] or row["journaled_at"])
            if moved > cutoff:
                continue
            library.catalog.set_trash_state(row["id"], "emptying", ("trashed",))
            _finish_emptying(library, TrashEntry(**row))
            emptied.append(_entry(library.catalog.trash_entry(row["id"])))
    return emptied


def _finish_emptying(library: Library, entry: TrashEntry) -> None:
    path = library.root / entry.trash_path
    if not _within(os.path.abspath(path), library.trash_dir):
        raise TrashError(f"trash entry {entry.id} points outside the trash; left alone")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # unlink never follows a link
    with contextlib.suppress(OSError):
        path.parent.rmdir()
    library.catalog.finish_empty(entry.id)


# --------------------------------------------------------------- recovery
def recover_interrupted(library: Library) -> list[str]:
    """Complete or roll back moves a crash interrupted; one line per entry handled.

    Called by `open_library` on every start; costs one query when there is nothing to
    do, and leaves entries alone while another process holds the journal lock."""
    if not library.catalog.trash_entries(_PENDING):
        return []
    notes: list[str] = []
    try:
        with _journal_lock(library, wait=False) as locked:
            if not locked:
                return []
            for row in library.catalog.trash_entries(_PENDING):
                entry = TrashEntry(**row)
                try:
                    notes.append(_recover(library, entry))
                except (OSError, TrashError) as err:
                    notes.append(f"trash entry {entry.id}: left for next start ({err})")
    except OSError as err:  # e.g. a read-only library: report, never refuse to open
        notes.append(f"interrupted trash moves not checked: {err.strerror or err}")
    for note in notes:
        log.warning("%s", note)
    return notes


def _recover(library: Library, entry: TrashEntry) -> str:
    catalog = library.catalog
    in_trash = library.root / entry.trash_path
    original = Path(entry.original_path)
    if entry.state == "emptying":
        _finish_emptying(library, entry)
        return f"trash entry {entry.id}: finished deleting {in_trash.name}"
    if entry.state == "moving":
        src, dst = original, in_trash
    else:
        src, dst = in_trash, original
    partial = _partial(dst)
    if _is_regular_file(partial):
        os.unlink(partial)
    src_here, dst_here = _is_regular_file(src), _is_regular_file(dst)
    if src_here and dst_here:
        # A cross-filesystem copy finished but the original was not removed yet.
        if _hash(dst) == _hash(src) == entry.content_hash:
            os.unlink(src)
            src_here = False
        elif entry.state == "moving":
            catalog.set_trash_state(entry.id, "rolled_back", ("moving",))
            return f"trash entry {entry.id}: {original} changed meanwhile; left in place"
        else:
            catalog.set_trash_state(entry.id, "trashed", ("restoring",))
            return f"trash entry {entry.id}: {original} is taken; kept in the trash"
    if dst_here and not src_here:
        if entry.state == "moving":
            catalog.finish_trash(entry.id)
            return f"trash entry {entry.id}: finished moving {original} to the trash"
        with contextlib.suppress(OSError):
            in_trash.parent.rmdir()
        catalog.finish_restore(entry.id)
        return f"trash entry {entry.id}: finished restoring {original}"
    if src_here:
        if entry.state == "moving":
            with contextlib.suppress(OSError):
                in_trash.parent.rmdir()
            catalog.set_trash_state(entry.id, "rolled_back", ("moving",))
            return f"trash entry {entry.id}: {original} was not moved; left in place"
        catalog.set_trash_state(entry.id, "trashed", ("restoring",))
        return f"trash entry {entry.id}: restore of {original} undone; still in the trash"
    catalog.set_trash_state(entry.id, "lost", _PENDING)
    return f"trash entry {entry.id}: {original} is in neither place; marked lost"
