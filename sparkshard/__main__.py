"""``python -m sparkshard ...``: see :mod:`sparkshard.cli`."""

from __future__ import annotations

import sys

from sparkshard.cli import main

if __name__ == "__main__":
    sys.exit(main())
