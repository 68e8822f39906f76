"""A fresh dataset location on each object store the end-to-end tests run against.

The ``cloud`` fixture (``tests/conftest.py``) is parametrized over :data:`CLOUDS`: each test
runs once per store, with a new bucket or container on that store's session server
(``tests/servers.py``) and the ``storage_options`` that reach it.

- ``s3``: ``s3://<bucket>`` on moto.
- ``gs``: ``gs://<bucket>`` on fake-gcs-server.
- ``abfss``: ``abfss://<container>@<account>.dfs.core.windows.net`` on Azurite, the URL
  Databricks users write for ADLS Gen2. Its options name only the endpoint and the key:
  the account comes from the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from servers import AZURITE_ACCOUNT, AZURITE_KEY

CLOUDS = ("s3", "gs", "abfss")
SERVER_FIXTURES = {"s3": "s3_server", "gs": "gcs_server", "abfss": "azure_server"}


@dataclass(frozen=True)
class CloudPlace:
    """An empty bucket (``root``, a URL) and the ``storage_options`` to use it."""

    name: str
    root: str
    storage_options: dict[str, Any]

    def url(self, path: str) -> str:
        return f"{self.root}/{path.strip('/')}"

    def cli_options(self) -> list[str]:
        """The options as the command line takes them: ``--storage-option KEY=VALUE`` each."""
        return [
            arg
            for key, value in self.storage_options.items()
            for arg in ("--storage-option", f"{key}={value}")
        ]


def place_on(name: str, server: Any) -> CloudPlace:
    """A new bucket on ``server``, the running server for cloud ``name``."""
    bucket = server.new_bucket(name)
    if name == "abfss":
        container = bucket.removeprefix("az://")
        root = f"abfss://{container}@{AZURITE_ACCOUNT}.dfs.core.windows.net"
        return CloudPlace(name, root, {"endpoint": server.endpoint_url, "account_key": AZURITE_KEY})
    return CloudPlace(name, bucket, dict(server.storage_options))
