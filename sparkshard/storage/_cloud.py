"""S3, GCS and Azure Blob through obstore (a native Rust client that releases the GIL).

One request per operation: ``write`` is a single PUT (atomic: the object appears whole or
not at all), ``write_new`` a conditional PUT (``If-None-Match: *`` on S3 and Azure,
``x-goog-if-generation-match: 0`` on GCS), ``read_range`` a ranged GET. obstore retries
transient failures with backoff within the limits of :mod:`sparkshard.storage._cloud_options`,
and every request is tried again here too, with backoff, until ``retry_timeout`` has passed
(obstore's retries alone spend themselves in seconds on a refused connection); what still
fails is translated to ``FileNotFoundError``, ``PermissionError``,
``FileExistsError`` or :class:`~sparkshard.errors.StorageError`, naming the URL.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sparkshard.errors import StorageError, require
from sparkshard.storage._cloud_options import CloudOptions, seconds
from sparkshard.storage.store import check_key

__all__ = ["CloudStore"]

log = logging.getLogger(__name__)
# obstore runs its requests on one I/O runtime per process, started by the first request;
# its threads do not survive fork(), so a forked child of a process that made requests
# hangs on its first one. This records which process started it (a fact about the native
# library, not configuration), so such a child gets an error instead of a hang.
_RUNTIME_PID: list[int] = []
_MISSING_BUCKET = ("NoSuchBucket", "ContainerNotFound", "bucket does not exist")
# Failures worth another try: the connection or the server, never the request itself (a
# missing object, a bad range or a refused credential fails the same way every time).
_TRANSIENT = re.compile(
    r"error sending request|connect|timed? ?out|reset by peer|broken pipe|connection closed"
    r"|status(?: code)?[:= ]+(?:5\d\d|408|429)|slow ?down|service ?unavailable|internal ?error",
    re.IGNORECASE,
)
_FIRST_BACKOFF, _MAX_BACKOFF = 0.1, 15.0  # seconds between tries of one request
_T = TypeVar("_T")
_CREDENTIALS = {
    "s3": (
        "storage_options key/secret (and token), profile, or the standard AWS chain "
        "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, container or instance role)"
    ),
    "gcs": (
        "storage_options token (a service-account JSON path or an OAuth token), "
        "GOOGLE_APPLICATION_CREDENTIALS, or the VM's service account"
    ),
    "azure": (
        "storage_options account_name with account_key, sas_token or connection_string; "
        "AZURE_STORAGE_* variables; a managed identity; or use_azure_cli=True after `az login`"
    ),
}


class CloudStore:
    """A dataset under ``{scheme}://{bucket}/{prefix}`` on S3, GCS or Azure Blob Storage."""

    def __init__(self, url: str, bucket: str, prefix: str, options: CloudOptions) -> None:
        self._url = url.rstrip("/")
        self._bucket, self._prefix, self._options = bucket, prefix.strip("/"), options
        self._client: Any = None
        self._pid = -1
        self._window = seconds(options.retry.get("retry_timeout", 0))
        _build(bucket, self._prefix, options)  # bad options fail here, with no request sent

    def __repr__(self) -> str:
        return f"CloudStore({self._url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None, "_pid": -1}

    @property
    def url(self) -> str:
        return self._url

    @property
    def options(self) -> CloudOptions:
        return self._options

    def read(self, key: str) -> bytes:
        return bytes(self.read_view(key))

    def read_view(self, key: str) -> memoryview:
        obstore = self._obstore()
        check_key(key, self._url)
        try:
            return memoryview(self._retrying(lambda: obstore.get(self._native(), key).bytes()))
        except Exception as exc:
            raise self._error(exc, "read", key) from exc

    def read_range(self, key: str, start: int, length: int) -> bytes:
        obstore = self._obstore()
        check_key(key, self._url)
        if start < 0:
            raise ValueError(f"read_range start must be >= 0, got {start}")
        if length <= 0:
            if not self.exists(key):
                raise FileNotFoundError(f"{self._target(key)} does not exist")
            return b""
        try:
            return bytes(
                self._retrying(
                    lambda: obstore.get_range(self._native(), key, start=start, length=length)
                )
            )
        except FileNotFoundError as exc:
            raise self._error(exc, "read", key) from exc
        except Exception as exc:
            # A range that starts at or past the end is refused by the server (416) or the
            # client; the contract says it reads as empty, so look at the object's size.
            if start >= self._size(key):
                return b""
            raise self._error(exc, "read", key) from exc

    def read_pinned(
        self, key: str, span: tuple[int, int] | int, e_tag: str | None = None
    ) -> tuple[bytes, dict[str, Any]]:
        """Bytes ``span`` (``(start, end)``, or an ``int`` n: the last n bytes) of ``key``
        and the object's ``{size, e_tag, version}``. With ``e_tag`` the GET is conditional
        (If-Match): an object replaced under the same name raises ``FileExistsError``.
        Azure refuses suffix ranges: there the object's size and ETag come from a HEAD
        first, and the tail is read as a bounded range pinned to that ETag."""
        obstore = self._obstore()
        check_key(key, self._url)
        if isinstance(span, int) and self._options.cloud == "azure":
            head = self._head(key)
            if e_tag is not None and head.get("e_tag") not in (None, e_tag):
                raise FileExistsError(
                    f"{self._target(key)} changed (its ETag is no longer {e_tag})"
                )
            size = int(head["size"])
            if not size or not span:
                return b"", _meta(head)
            span, e_tag = (max(0, size - span), size), e_tag or head.get("e_tag")
        options: dict[str, Any] = {
            "range": {"suffix": span} if isinstance(span, int) else (span[0], span[1])
        }
        if e_tag is not None:
            options["if_match"] = e_tag

        def get() -> tuple[bytes, dict[str, Any]]:
            result = obstore.get(self._native(), key, options=options)
            return bytes(result.bytes()), _meta(result.meta)

        try:
            return self._retrying(get)
        except Exception as exc:
            if type(exc).__name__ == "PreconditionError":
                raise FileExistsError(
                    f"{self._target(key)} changed (its ETag is no longer {e_tag})"
                ) from exc
            if isinstance(span, int) and not isinstance(exc, FileNotFoundError):
                head = self._head(key)  # an empty object has no tail to range over
                if not int(head["size"]):
                    return b"", _meta(head)
            raise self._error(exc, "read", key) from exc

    def write(self, key: str, data: bytes) -> None:
        obstore = self._obstore()
        check_key(key, self._url)
        try:
            self._retrying(lambda: obstore.put(self._native(), key, data, use_multipart=False))
        except Exception as exc:
            raise self._error(exc, "write", key) from exc

    def write_new(self, key: str, data: bytes) -> None:
        obstore = self._obstore()
        exceptions = self._exceptions()
        check_key(key, self._url)
        try:
            self._retrying(lambda: obstore.put(self._native(), key, data, mode="create"))
            return
        except (exceptions.AlreadyExistsError, exceptions.PreconditionError) as exc:
            conflict = exc
        except Exception as exc:
            raise self._error(exc, "create", key) from exc
        # A retried request whose first attempt landed also meets a conflict: the object
        # then holds exactly our bytes, and this write did win.
        if self.read(key) == bytes(data):
            log.info("%s: create-if-absent found its own earlier attempt", self._target(key))
            return
        raise FileExistsError(f"{self._target(key)} already exists") from conflict

    def exists(self, key: str) -> bool:
        try:
            self._size(key)
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:
        obstore = self._obstore()
        folder = check_key(prefix, self._url).strip("/")
        try:
            keys = self._retrying(
                lambda: [
                    meta["path"]
                    for chunk in obstore.list(self._native(), folder or None, chunk_size=1000)
                    for meta in chunk
                ]
            )
        except Exception as exc:
            raise self._error(exc, "list", prefix) from exc
        if not keys and folder and self.exists(folder):
            keys = [folder]  # the prefix names one object
        return sorted(keys)

    def delete(self, key: str) -> None:
        obstore = self._obstore()
        check_key(key, self._url)
        try:
            self._retrying(lambda: obstore.delete(self._native(), key))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._error(exc, "delete", key) from exc

    def local_path(self, key: str) -> str | None:
        return None

    def _size(self, key: str) -> int:
        return int(self._head(key)["size"])

    def _head(self, key: str) -> Any:
        obstore = self._obstore()
        check_key(key, self._url)
        try:
            return self._retrying(lambda: obstore.head(self._native(), key))
        except Exception as exc:
            raise self._error(exc, "stat", key) from exc

    def _retrying(self, request: Callable[[], _T]) -> _T:
        """``request()``, tried again with backoff while it fails for a reason that may pass
        (a refused connection, a timeout, a server error) until ``retry_timeout`` has passed
        since the first try: an outage shorter than that window is ridden out whatever its
        kind. Missing objects, denied access, conflicts and bad requests fail at once."""
        if self._window <= 0:
            return request()
        deadline = time.monotonic() + self._window
        delay = _FIRST_BACKOFF
        while True:
            try:
                return request()
            except Exception as exc:
                left = deadline - time.monotonic()
                if left <= 0 or not self._transient(exc):
                    raise
                log.warning(
                    "request to %s failed (%s); retrying in %.1f s (%.0f s of retry_timeout "
                    "left)", self._url, _first_line(exc), min(delay, left), left,
                )  # fmt: skip
                time.sleep(min(delay, left))
                delay = min(delay * 2, _MAX_BACKOFF)

    def _transient(self, exc: Exception) -> bool:
        exceptions = self._exceptions()
        permanent = (
            FileNotFoundError,
            exceptions.PermissionDeniedError,
            exceptions.UnauthenticatedError,
            exceptions.AlreadyExistsError,
            exceptions.PreconditionError,
            exceptions.NotSupportedError,
            exceptions.InvalidPathError,
            exceptions.UnknownConfigurationKeyError,
        )
        if isinstance(exc, permanent) or not isinstance(exc, exceptions.BaseError):
            return False
        text = str(exc)
        if any(marker in text for marker in _MISSING_BUCKET):
            return False
        # The first paragraph says what happened; obstore's debug dump below it names every
        # setting (retry_timeout, ...), which must not count as a symptom.
        return _TRANSIENT.search(text.split("\n\n", 1)[0]) is not None

    def _target(self, key: str) -> str:
        return f"{self._url}/{key}" if key else self._url

    def _obstore(self) -> Any:
        """obstore, once this process may send requests with it."""
        obstore = require("obstore", "cloud", f"reading and writing {self._url}")
        pid = os.getpid()
        if not _RUNTIME_PID:
            _RUNTIME_PID.append(pid)
        elif _RUNTIME_PID[0] != pid:
            raise StorageError(
                f"cannot use {self._url} in process {pid}: it was forked from process "
                f"{_RUNTIME_PID[0]} after that process sent storage requests, and the "
                "cloud client's I/O threads do not survive fork(); start worker processes "
                "with the 'spawn' or 'forkserver' method (e.g. DataLoader("
                "multiprocessing_context='spawn')), or fork before the first request"
            )
        return obstore

    def _exceptions(self) -> Any:
        return require("obstore.exceptions", "cloud", f"reading and writing {self._url}")

    def _native(self) -> Any:
        """The obstore client, built per process (a forked child builds its own)."""
        if self._client is None or self._pid != os.getpid():
            self._client = _build(self._bucket, self._prefix, self._options)
            self._pid = os.getpid()
        return self._client

    def _error(self, exc: Exception, op: str, key: str) -> Exception:
        """``exc`` from obstore as the builtin error the Store contract promises."""
        exceptions = self._exceptions()
        target = self._target(key)
        detail = _first_line(exc)
        if any(marker in str(exc) for marker in _MISSING_BUCKET):
            return FileNotFoundError(
                f"cannot {op} {target}: the bucket or container {self._bucket!r} does not "
                "exist; create it, or check the URL and the endpoint in storage_options"
            )
        if isinstance(exc, FileNotFoundError):
            return FileNotFoundError(f"{target} does not exist")
        if isinstance(exc, (exceptions.PermissionDeniedError, exceptions.UnauthenticatedError)):
            return PermissionError(
                f"access denied: cannot {op} {target} ({detail}); check the credentials: "
                f"{_CREDENTIALS[self._options.cloud]}"
            )
        if isinstance(exc, exceptions.AlreadyExistsError):
            return FileExistsError(f"{target} already exists")
        return StorageError(f"cannot {op} {target}: {detail}")


def _build(bucket: str, prefix: str, options: CloudOptions) -> Any:
    store: Any = require("obstore.store", "cloud", f"{options.cloud} storage")
    exceptions: Any = require("obstore.exceptions", "cloud", f"{options.cloud} storage")
    cls = {"s3": store.S3Store, "gcs": store.GCSStore, "azure": store.AzureStore}[options.cloud]
    kwargs: dict[str, Any] = {
        "prefix": prefix or None,
        "config": dict(options.config),
        "client_options": dict(options.client),
        "retry_config": dict(options.retry),
    }
    if options.profile is not None:
        boto3: Any = require("boto3", "cloud", "storage_options profile=")
        from obstore.auth.boto3 import Boto3CredentialProvider

        session = boto3.Session(profile_name=options.profile)
        kwargs["credential_provider"] = Boto3CredentialProvider(session)
    try:
        return cls(bucket, **kwargs)
    except exceptions.BaseError as exc:
        raise ValueError(
            f"invalid storage_options for {options.cloud} bucket {bucket!r}: {_first_line(exc)}; "
            "see the 'Storage' section of the README for the accepted names"
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "..."


def _meta(meta: Any) -> dict[str, Any]:
    """An object's ``{size, e_tag, version}`` from obstore's metadata."""
    return {"size": meta["size"], "e_tag": meta.get("e_tag"), "version": meta.get("version")}
