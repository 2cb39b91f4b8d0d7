"""The live dashboard: one page and its static files, served by the worker.

There is no build step. The page is plain HTML, CSS and JavaScript (app/static), and its
charts are drawn by uPlot, vendored from npm with its licence (app/static/vendor). It
polls ``/api/status`` and ``/api/sink`` (the PostgreSQL sink), and asks
``/api/keys/{key}`` for the key lookup. The files are read once, at start; a path that
names none of them gets a JSON 404.
"""

from __future__ import annotations

from pathlib import Path

import faust
from faust.web import Request, Response, View

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """Every file under app/static, by its path there: (content, content type)."""
    return {
        path.relative_to(STATIC).as_posix(): (path.read_bytes(), CONTENT_TYPES[path.suffix])
        for path in sorted(STATIC.rglob("*"))
        if path.suffix in CONTENT_TYPES
    }


def register_dashboard(app: faust.App) -> None:
    files = static_files()
    page, page_type = files["dashboard.html"]

    @app.page("/dashboard")
    class Dashboard(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(page, headers={"Content-Type": page_type})

    @app.page("/dashboard/static/{path:.+}")
    class DashboardFile(View):
        async def get(self, request: Request, path: str) -> Response:
            found = files.get(path)
            if found is None:
                return self.error(404, f"the dashboard has no file {path!r}", path=request.url.path)
            body, content_type = found
            return self.bytes(body, headers={"Content-Type": content_type})
