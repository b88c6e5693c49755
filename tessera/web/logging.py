"""Logging: structlog and the stdlib (uvicorn's records) as one JSON object per line on stderr.

A leaf: it imports nothing of tessera. ``configure_logging`` is called by every
``create_app`` (so in every worker process) and by ``tessera serve`` before uvicorn starts.
Every line written while a request is handled carries its id (``REQUEST_ID``, set by
``tessera.web.middleware``). uvicorn's own access logger is disabled in every process:
tessera writes its own access line, which never carries a path or a query string.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar
from typing import Any, TextIO

import structlog

#: The id of the request being handled (set by the request middleware), for every log line.
REQUEST_ID: ContextVar[str | None] = ContextVar("tessera_request_id", default=None)

_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}
_configured: dict[str, int] = {}


def configured_level() -> int:
    """The level ``configure_logging`` last set (INFO before any call)."""
    return _configured.get("level", logging.INFO)


def _add_request_id(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Every log line written while a request is handled carries its id."""
    if "request_id" not in event_dict:
        rid = REQUEST_ID.get()
        if rid is not None:
            event_dict["request_id"] = rid
    return event_dict


#: Called once for every line that could not be written (the metrics count them; set by the app).
on_line_lost: Callable[[], None] | None = None
_lost: dict[str, int] = {"lines": 0}


def lines_lost() -> int:
    """How many lines this process could not write (a closed or broken stderr, a full disk)."""
    return _lost["lines"]


class _StderrLogger:
    """structlog's output: each rendered event as one line on the *current* ``sys.stderr``
    (looked up per line, so a replaced stream -- test capture -- is followed).

    A line that cannot be written (stderr closed, a broken pipe to the log collector, a full
    disk) is dropped and counted (``lines_lost``, the ``tessera_log_lines_lost`` metric): a
    request that was answered must not become a 500 because its access line had nowhere to go."""

    _lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            try:
                stream = sys.stderr
                stream.write(message + "\n")
                stream.flush()
            except (OSError, ValueError, AttributeError):  # ValueError: closed; AttributeError: None
                _lost["lines"] += 1
                hook = on_line_lost
                if hook is not None:
                    hook()

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = err = msg


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A stdlib handler on the current ``sys.stderr`` (as ``logging.lastResort`` does)."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        logging.Handler.__init__(self, level)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


_STDERR_LOGGER = _StderrLogger()
#: Handlers installed here carry this attribute, so that a second call replaces them.
_MARK = "_tessera"


def configure_logging(level: str = "info") -> None:
    """structlog → one JSON object per line on stderr, at ``level``; uvicorn's records too.

    Idempotent: called by every ``create_app``; reconfigures only when the level changes.
    """
    numeric = _LEVELS.get(str(level).lower(), logging.INFO)
    if _configured.get("level") == numeric:
        return
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Any] = [structlog.processors.add_log_level, timestamper, _add_request_id]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=lambda *args: _STDERR_LOGGER,
        cache_logger_on_first_use=False,
    )
    # uvicorn (and anything else on the stdlib logging module) → the same JSON lines.
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    setattr(handler, _MARK, True)
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = [handler] if name == "uvicorn" else []
        lg.propagate = name != "uvicorn"
    # Never uvicorn's access line (it carries the full URL, query string included): tessera
    # writes its own. uvicorn's protocols log one whenever this logger "hasHandlers()", and a
    # worker process (--workers N) calls this after uvicorn set it up: so no handler, no
    # propagation, and disabled, in every process.
    access = logging.getLogger("uvicorn.access")
    access.handlers, access.propagate, access.disabled = [], False, True
    logging.getLogger("uvicorn").setLevel(numeric)
    # Other libraries: warnings and errors only, as before (their INFO lines may carry URLs).
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, _MARK, False)]
    if not root.handlers:
        quiet = _StderrHandler(max(numeric, logging.WARNING))
        quiet.setFormatter(handler.formatter)
        setattr(quiet, _MARK, True)
        root.addHandler(quiet)
    logging.captureWarnings(True)  # Python warnings too, as JSON (py.warnings), not bare stderr text
    _configured["level"] = numeric


def line_writer() -> Callable[[str], None]:
    """structlog's configured output (its ``msg``), else a line on stderr: for lines rendered
    by hand in the same JSON shape (the access log)."""
    try:
        writer: Callable[[str], None] = structlog.get_config()["logger_factory"]().msg
    except Exception:  # noqa: BLE001 - someone else's factory, one that needs arguments
        return _STDERR_LOGGER.msg
    return writer
