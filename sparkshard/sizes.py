"""Human byte sizes (``"64MB"``, ``"1.5GiB"``, ``1 << 26``) to integers."""

from __future__ import annotations

import re

__all__ = ["parse_size"]

_UNITS = {
    "": 1, "b": 1,
    "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
    "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
}  # fmt: skip
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | str, *, what: str = "size") -> int:
    """Bytes in ``value``; units are binary, as Mosaic reads them ("64MB" = 64 MiB)."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a byte count or a string like '64MB', got {value!r}")
    if isinstance(value, int):
        number = value
    else:
        match = _PATTERN.match(str(value))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"{what} {value!r} is not a size: expected a byte count or a number with a "
                "unit such as '512KB', '64MB', '1GB'"
            )
        number = int(float(match.group(1)) * _UNITS[unit])
    if number <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return number
