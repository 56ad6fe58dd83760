"""The HTTP side of the web app: our own image routes, with Gradio mounted beside them.

Photos reach the browser only as the cached thumbnails (and, for the details view, a
cached downscaled preview), through ``/thumb/<id>`` and ``/preview/<id>``. Each request
names a photo by its catalog id; the route checks that the id is a plain number, that the
photo exists and may be shown (searchable; for thumbnails also in the library trash, so the
trash can be reviewed), and then serves the file the catalog names inside the library's
thumbs folder. No route takes a path from the request, and the photo
folders are never given to Gradio as static or allowed paths.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.catalog import Photo
from indexer.errors import DecodeError, KezhaoError
from indexer.previews import ensure_preview
from ui.context import Services

_PHOTO_ID = re.compile(r"[0-9]{1,15}")
THUMB_STATUSES = frozenset({"ok", "trashed"})
PREVIEW_STATUSES = frozenset({"ok"})
IMAGE_HEADERS = {
    "Cache-Control": "private, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
}


class ServerError(KezhaoError):
    """The web app cannot start (port taken, address not available)."""


def _visible_photo(services: Services, raw_id: str, statuses: frozenset[str]) -> Photo | None:
    """The photo a request names, if it may be shown; None for anything else."""
    if not _PHOTO_ID.fullmatch(raw_id or ""):
        return None
    photo = services.library.catalog.get_photo(int(raw_id))
    if photo is None or photo.status not in statuses or not photo.thumbnail:
        return None
    return photo


def _inside(path: Path, folder: Path) -> Path | None:
    resolved = path.resolve()
    return resolved if resolved.is_relative_to(folder.resolve()) and resolved.is_file() else None


def thumbnail_file(services: Services, raw_id: str) -> Path | None:
    """The cached thumbnail for ``/thumb/<raw_id>``, or None (answered with 404)."""
    photo = _visible_photo(services, raw_id, THUMB_STATUSES)
    if photo is None:
        return None
    thumbs = services.library.thumbs_dir
    return _inside(thumbs / str(photo.thumbnail), thumbs)


def preview_file(services: Services, raw_id: str) -> Path | None:
    """A larger cached preview for the details view; the thumbnail if the original is
    unreadable now. Never the original file itself."""
    photo = _visible_photo(services, raw_id, PREVIEW_STATUSES)
    if photo is None:
        return None
    try:
        made = ensure_preview(services.library, photo)
    except (DecodeError, ValueError, OSError):
        return thumbnail_file(services, raw_id)
    return _inside(made, services.library.thumbs_dir)


def create_server(services: Services, host: str = "127.0.0.1", port: int = 7860) -> Any:
    """A FastAPI app with the image routes and the Gradio UI mounted at ``/``."""
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.responses import FileResponse, PlainTextResponse

    from ui.app import build_app, theme
    from ui.render import CSS

    api = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    def image(found: Path | None) -> Any:
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(found, media_type="image/jpeg", headers=IMAGE_HEADERS)

    @api.get("/thumb/{photo_id}")
    def thumb(photo_id: str) -> Any:
        return image(thumbnail_file(services, photo_id))

    @api.get("/preview/{photo_id}")
    def preview(photo_id: str) -> Any:
        return image(preview_file(services, photo_id))

    return gr.mount_gradio_app(
        api, build_app(services), path="/", server_name=host, server_port=port,
        ssr_mode=False, footer_links=[], run_history=False, mcp_server=False, pwa=False,
        allowed_paths=[], blocked_paths=[str(services.library.root)],
        max_file_size="50mb", theme=theme(), css=CSS,
    )


def check_port(host: str, port: int) -> None:
    """Fail with one clear line before starting, instead of uvicorn's exit on a taken port."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as err:
        raise ServerError(f"cannot listen on {host}:{port} ({err.strerror}) — choose "
                          "another with --port, or stop the program using it") from None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A web app serving in a background thread (for tests, and behind `launch`)."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(
    services: Services, host: str = "127.0.0.1", port: int | None = None,
    startup_timeout: float = 60.0,
) -> RunningServer:
    """Start the app in a daemon thread and return once it accepts connections."""
    import uvicorn

    port = free_port(host) if port is None else port
    check_port(host, port)
    app = create_server(services, host, port)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="kezhao-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServerError(f"the web app did not start on {host}:{port}")
        time.sleep(0.05)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return RunningServer(f"http://{shown}:{port}/", server, thread)


def serve_forever(services: Services, host: str, port: int, open_browser: bool) -> None:
    """Run until Ctrl+C, optionally opening a browser tab once the app is up."""
    running = start_server(services, host, port)
    print(f"kezhao web app: {running.url}  (Ctrl+C to stop)", flush=True)
    if open_browser:
        webbrowser.open(running.url)
    try:
        while running.thread.is_alive():
            running.thread.join(timeout=0.5)
    except KeyboardInterrupt:
        print("stopping the web app", flush=True)
    finally:
        running.stop()
