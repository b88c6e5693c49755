"""ASGI entry point for uvicorn workers: ``tessera.web.asgi:create`` (a factory)."""

from __future__ import annotations

import os

from starlette.applications import Starlette

from tessera import startup
from tessera.config import Settings
from tessera.web.app import create_app


def create() -> Starlette:
    app = create_app(Settings.load(os.environ.get("TESSERA_HOME")))
    startup.settle()  # the worker's start is over: the collector's own thresholds from here on
    return app
