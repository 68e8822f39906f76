"""The command-line tools as functions: ``inspect``, ``history``, ``verify`` and ``gc``.

Each works on any :class:`~sparkshard.storage.Store` and returns a value that a
``render_*`` function turns into the lines ``python -m sparkshard`` prints.
"""

from __future__ import annotations

__all__: list[str] = []
