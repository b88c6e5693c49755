"""``python -m tessera.cli``: the ``tessera`` console script's own entry (``tessera.console``), so
that both ways in start alike (the collector deferred while the command's modules load, the
server extra's missing packages named in one line)."""

from tessera.console import main

main()
