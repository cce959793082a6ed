"""/docs (Swagger UI) and /redoc (ReDoc) without a network: their scripts and styles come
from the ``fastapi-offline`` package and are served by Takt under ``/docs/assets``.

FastAPI's own pages load both from a CDN and ReDoc's fonts from Google, so they stay blank
on a machine without Internet access. These pages are FastAPI's HTML pointed at Takt's
copies; Swagger UI's online validator is off (it would send the spec to
validator.swagger.io), and a Content-Security-Policy keeps every request on Takt's origin
(ReDoc's footer logo, on ReDoc's CDN, is the one thing left that it would fetch: the
policy refuses it and nothing else is missing).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "DOCS_POLICY", "install_api_docs"]

#: Where the pages' assets are served (the ``static`` folder of ``fastapi_offline``).
ASSETS = "/docs/assets"

#: Both pages run an inline script that starts the bundle; ReDoc draws with inline styles
#: and runs its search in a worker made from a blob.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def install_api_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to an app made with ``docs_url=None`` and
    ``redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _with_policy(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        return _with_policy(page)


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page
