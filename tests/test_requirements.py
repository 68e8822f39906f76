"""A missing Mosaic peer or test server skips its tests, or fails them when the run requires
it (``SPARKSHARD_REQUIRE_MOSAIC=1``, ``SPARKSHARD_REQUIRE_SERVERS=1``, as ``make pytest``
sets): the one rule in ``mosaic_peer.require_mosaic_peer`` and ``servers.serving``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mosaic_peer import REQUIRE_MOSAIC_ENV, require_mosaic_peer
from servers import (
    LOCALHOST,
    REQUIRE_SERVERS_ENV,
    AzuriteServer,
    FakeGcsServer,
    MotoServer,
    serving,
)

OUTCOMES = {"0": pytest.skip.Exception, "1": pytest.fail.Exception}


@pytest.mark.parametrize("required", ["0", "1"], ids=["skips", "fails-when-required"])
def test_a_missing_mosaic_peer(
    required: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_MOSAIC_ENV, required)
    missing = tmp_path / ".venv-mosaic" / "bin" / "python"
    with pytest.raises(OUTCOMES[required], match=rf"{missing} is missing.*make setup"):
        require_mosaic_peer(missing)
    peer = tmp_path / "python"
    peer.touch()
    require_mosaic_peer(peer)  # present: neither skips nor fails


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something already listens on."""
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _broken(kind: str, tmp_path: Path, busy_port: int) -> Any:
    missing = tmp_path / "no-such-binary"
    return {
        "moto": lambda: MotoServer(port=busy_port),
        "fake-gcs-server": lambda: FakeGcsServer(binary=missing),
        "azurite": lambda: AzuriteServer(tmp_path / "azurite", binary=missing),
    }[kind]()


@pytest.mark.parametrize("required", ["0", "1"], ids=["skips", "fails-when-required"])
@pytest.mark.parametrize("kind", ["moto", "fake-gcs-server", "azurite"])
def test_a_server_that_cannot_start(
    kind: str, required: str, tmp_path: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REQUIRE_SERVERS_ENV, required)
    server = _broken(kind, tmp_path, busy_port)
    with (
        pytest.raises(
            OUTCOMES[required], match=rf"{type(server).__name__} cannot start: .+make setup"
        ),
        serving(server),
    ):
        raise AssertionError(f"{kind} started: the test cannot see a failed start")
