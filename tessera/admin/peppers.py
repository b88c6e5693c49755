"""Rotating the pepper of machine credentials without invalidating them all at once.

Rules:

* ``add_pepper`` records a new pepper's check value under a new id in ``tessera.toml``
  (``pepper_checks``), so that the server can refuse a wrong one. The operator then makes it
  the current pepper (``TESSERA_PEPPER``, ``TESSERA_PEPPER_ID``) and keeps the old one accepted
  (``TESSERA_OLD_PEPPERS``): every new hash is made under the new pepper, and every credential
  that verifies under an old one is stored again under the new one (``tessera.core.clients``,
  ``tessera.core.apikeys``).
* ``pepper_usage`` counts the stored hashes per pepper id.
* ``retire_pepper`` marks an old pepper retired (``retired_peppers``): never accepted again.
  Refused for the current pepper, and, unless forced, while hashes under it remain (their
  credentials would stop working)."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass

from tessera.admin.context import Admin
from tessera.admin.errors import Conflict, Invalid
from tessera.config import CONFIG_FILE, pepper_check_value
from tessera.core.ports import RehashesSecrets
from tessera.core.secrets import pepper_id_of


@dataclass(frozen=True)
class PepperUsage:
    current: int
    configured: list[int]
    retired: list[int]
    #: hashes per pepper id and kind: {id: {"client_secrets": n, "api_keys": m}}
    hashes: dict[int, dict[str, int]]

    def remaining_on_old(self) -> int:
        return sum(sum(kinds.values()) for pid, kinds in self.hashes.items() if pid != self.current)

    def as_dict(self) -> dict[str, object]:
        return {
            "current": self.current,
            "configured": self.configured,
            "retired": self.retired,
            "hashes": {str(pid): kinds for pid, kinds in sorted(self.hashes.items())},
            "remaining_on_old_peppers": self.remaining_on_old(),
        }


def _store(admin: Admin) -> RehashesSecrets:
    if not isinstance(admin.store, RehashesSecrets):
        raise Invalid("this store cannot list credential hashes")
    return admin.store


def pepper_usage(admin: Admin) -> PepperUsage:
    peppers = admin.settings.peppers()
    hashes: dict[int, dict[str, int]] = {}
    for kind, values in _store(admin).credential_hashes().items():
        for pid, n in Counter(pepper_id_of(v) or 0 for v in values).items():
            hashes.setdefault(pid, {"client_secrets": 0, "api_keys": 0})[kind] = n
    return PepperUsage(peppers.current, sorted(peppers.keys), sorted(admin.settings.retired_peppers), hashes)


def _set_toml(admin: Admin, key: str, rendered: str) -> None:
    """Replace (or add) the top-level line ``key = ...`` of the home's tessera.toml."""
    path = admin.settings.home / CONFIG_FILE
    text = path.read_text()
    line = f"{key} = {rendered}"
    pattern = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
    text = pattern.sub(line, text, count=1) if pattern.search(text) else text.rstrip("\n") + "\n" + line + "\n"
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(text)
    st = path.stat()
    os.chmod(staged, st.st_mode & 0o777)
    if os.geteuid() == 0:
        os.chown(staged, st.st_uid, st.st_gid)
    os.replace(staged, path)


def _inline_table(values: dict[int, str]) -> str:
    return "{ " + ", ".join(f'{k} = "{v}"' for k, v in sorted(values.items())) + " }"


def add_pepper(admin: Admin, pepper_id: int, pepper: bytes) -> int:
    s = admin.settings
    known = set(s.recorded_pepper_checks()) | set(s.peppers().keys) | set(s.retired_peppers)
    if pepper_id in known:
        raise Conflict(f"pepper {pepper_id} exists already (or was retired): choose a new id")
    if pepper_id < 1:
        raise Invalid("must be at least 1", field="id")
    if any(pepper == value for value in s.peppers().keys.values()):
        raise Invalid("this pepper is already configured under another id")
    checks = dict(s.pepper_checks)
    checks[pepper_id] = pepper_check_value(pepper)
    _set_toml(admin, "pepper_checks", _inline_table(checks))
    admin.record("pepper.add", pepper_id=pepper_id)
    return pepper_id


def retire_pepper(admin: Admin, pepper_id: int, *, force: bool = False) -> PepperUsage:
    usage = pepper_usage(admin)
    if pepper_id == usage.current:
        raise Invalid("this is the current pepper: make another one current first")
    if pepper_id in usage.retired:
        raise Conflict(f"pepper {pepper_id} is retired already")
    remaining = sum(usage.hashes.get(pepper_id, {}).values())
    if remaining and not force:
        raise Conflict(
            f"{remaining} credential hash(es) are still under pepper {pepper_id}: wait until their clients "
            "have used them (each is then stored under the current pepper), or pass --force to invalidate them"
        )
    _set_toml(admin, "retired_peppers", "[" + ", ".join(str(p) for p in sorted({*usage.retired, pepper_id})) + "]")
    admin.record("pepper.retire", pepper_id=pepper_id, invalidated=remaining)
    return usage
