"""Routing by exact path.

Every tessera route is a fixed path, and every profile answers every method itself (405
in its own error shape). Starlette's ``Router`` tries the routes' regular expressions one
after another; with some forty routes, the token endpoints sit near the end of that scan.
``ExactRouter`` finds a fixed path with one dictionary look-up and hands over exactly as
``Router`` would (``scope["route"]``, ``endpoint``, ``path_params``); anything else
(a path with parameters, a method a route does not list, a miss) falls back to
``Router``'s own scan, redirects and 404 handling.
"""

from __future__ import annotations

from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send


class ExactRouter(Router):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._exact: dict[str, Route] = {}
        for route in self.routes:
            if isinstance(route, Route) and not route.param_convertors and route.path not in self._exact:
                self._exact[route.path] = route

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self._exact.get(scope["path"])
            if route is not None and (route.methods is None or scope["method"] in route.methods):
                scope.setdefault("router", self)
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)
