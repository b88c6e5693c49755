"""ASGI entry point for uvicorn workers: ``tessera.web.asgi:create`` (a factory)."""

from __future__ import annotations

import os

from tessera.config import Settings
from tessera.web.app import create_app


def create():
    return create_app(Settings.load(os.environ.get("TESSERA_HOME")))
