"""ASGI entry point for uvicorn workers: ``tessera.web.asgi:create`` (a factory)."""

from __future__ import annotations

import os

from starlette.applications import Starlette

from tessera.config import Settings
from tessera.web.app import create_app


def create() -> Starlette:
    return create_app(Settings.load(os.environ.get("TESSERA_HOME")))
