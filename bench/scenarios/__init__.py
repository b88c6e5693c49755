"""The scenario groups, one module each, every scenario declared as data (``spec.Scenario``):

    peers  peer.node_jwt peer.authlib_w1 peer.authlib_w2   (peers.py)
    s1     s1.native s1.nexi_proxy                        (s1_tokens.py; its server also runs s4 and s5 on SQLite)
    s2     s2.nexi_mtls s2.tls_new s2.tls_resume          (s2_mtls.py)
    s3     s3.par s3.par_nokid                            (s3_par.py)
    s4     s4.axept s4.mobilepay s4.mobilepay_vat     (s4_profiles.py)
    s5     s5.b2b_login s5.b2b_sqlite s5.b2b_pg       (s5_b2b.py)
    s6     s6.native_10k s6.nexi_10k s6.native_w2 s6.nexi_w2   (s6_growth.py)
    s7     s7.sdk                                         (s7_sdk.py)

``STEPS`` is the order of a run (each step brings up its own servers); ``select`` turns
``--scenarios`` into ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.scenarios import peers, s1_tokens, s2_mtls, s3_par, s4_profiles, s5_b2b, s6_growth, s7_sdk

if TYPE_CHECKING:
    from bench.harness.session import Harness

_MODULES: tuple[Any, ...] = (peers, s1_tokens, s2_mtls, s3_par, s4_profiles, s5_b2b, s6_growth, s7_sdk)
GROUPS: dict[str, list[str]] = {m.GROUP: [s.id for s in m.SCENARIOS] for m in _MODULES}
ALL_IDS = [i for ids in GROUPS.values() for i in ids]

PEERS_STEP: tuple[str, Callable[[Harness], None]] = ("peers", peers.run)
STEPS: list[tuple[str, Callable[[Harness], None]]] = [
    ("s1/s4/s5", s1_tokens.run_base),
    ("s6", s6_growth.run),
    ("s3", s3_par.run),
    ("s2", s2_mtls.run),
    ("s5-pg", s5_b2b.run_pg),
    ("s7", s7_sdk.run),
]


def select(spec: str) -> list[str]:
    """The ids ``--scenarios`` names: groups or ids (or an id's prefix), comma-separated."""
    if spec in ("", "all"):
        return list(ALL_IDS)
    chosen: list[str] = []
    for token in (t.strip() for t in spec.split(",") if t.strip()):
        ids = GROUPS.get(token) or [i for i in ALL_IDS if i == token or i.startswith(token + ".")]
        if not ids:
            raise SystemExit(f"unknown scenario {token!r}; known: {', '.join(GROUPS)} or one of {', '.join(ALL_IDS)}")
        chosen += [i for i in ids if i not in chosen]
    return chosen
