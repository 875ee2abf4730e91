"""Troika's own browser pages: GraphiQL and the operator console, static files served from the
package (app/static/) with the libraries they use vendored next to them (app/static/vendored.json).

The pages hold no data and no rights: whatever they show comes from /graphql, with the key the
operator pastes into them. So any browser may load them, and nothing they load leaves this origin.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# Scripts and styles from this origin only (the pages' own scripts are files, not inline);
# GraphiQL and cytoscape set inline styles, GraphiQL's fonts are data: URLs; requests go to
# /graphql over HTTP and WebSocket on the same origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "font-src 'self' data:; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _page(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def page(name: str) -> Response:
    """One of the static pages, e.g. graphiql.html, with the headers that keep it to this origin."""
    return HTMLResponse(_page(name), headers=PAGE_HEADERS)


def static_files() -> StaticFiles:
    """The pages' scripts, styles and vendored libraries, at /static."""
    return StaticFiles(directory=STATIC_DIR)
