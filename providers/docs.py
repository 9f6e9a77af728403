"""API docs for our ASGI apps: off unless asked for, and served without any CDN when on.

FastAPI's default ``/docs`` page loads Swagger UI from a CDN, so it renders blank on a machine
without internet; the assets here come from the ``fastapi-offline`` package instead.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

_ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"


def api_app(title: str, *, docs: bool) -> FastAPI:
    """A FastAPI app whose ``/docs`` and ``/openapi.json`` exist only when ``docs`` is true."""
    if not docs:
        return FastAPI(title=title, version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app = FastAPI(title=title, version="1", docs_url=None, redoc_url=None)
    app.mount(ASSETS_URL, StaticFiles(directory=_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
        )

    return app
