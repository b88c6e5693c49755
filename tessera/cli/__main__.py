"""``python -m tessera.cli``."""

from tessera.cli import main

main()
