"""Use cases, one module per provider and one for the native surface: each takes a parsed
request (a dataclass) and returns a result (a dataclass). The web profiles only parse their
wire format into the request and render the result or the typed error."""
