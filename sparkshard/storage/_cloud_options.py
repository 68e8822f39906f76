"""``storage_options`` for S3, GCS and Azure: validated once, split the way obstore takes them.

Users arrive with the names of the client they used before (s3fs ``key``/``secret``/
``endpoint_url``, gcsfs ``token``, adlfs ``connection_string``...), so common aliases map
onto obstore's own config names; obstore's names (``access_key_id``, ``endpoint``,
``base_url``, ``account_key``...) pass through unchanged, and obstore rejects unknown ones.
Anything not given comes from the cloud's standard environment and credential chain.

Our own keys, for every cloud: ``timeout`` (whole request, seconds or ``"30s"``),
``connect_timeout``, ``max_retries``, ``retry_timeout`` (total time spent retrying one
request), ``anon`` (unsigned requests), and obstore's client options (``allow_http``,
``proxy_url``, ``user_agent``...). ``allow_http`` turns on by itself for an ``http://``
endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "CLOUDS",
    "DEFAULT_CLIENT",
    "DEFAULT_RETRY",
    "CloudOptions",
    "cloud_options",
    "seconds",
]

CLOUDS = ("s3", "gcs", "azure")
DEFAULT_CLIENT: Mapping[str, Any] = MappingProxyType(
    {"connect_timeout": dt.timedelta(seconds=10), "timeout": dt.timedelta(seconds=300)}
)
DEFAULT_RETRY: Mapping[str, Any] = MappingProxyType(
    {
        "max_retries": 5,
        "retry_timeout": dt.timedelta(seconds=120),
        "backoff": {
            "init_backoff": dt.timedelta(milliseconds=100),
            "max_backoff": dt.timedelta(seconds=15),
            "base": 2,
        },
    }
)
_CLIENT_KEYS = frozenset(
    {
        "allow_http",
        "allow_invalid_certificates",
        "connect_timeout",
        "default_content_type",
        "default_headers",
        "pool_idle_timeout",
        "pool_max_idle_per_host",
        "proxy_url",
        "proxy_ca_certificate",
        "proxy_excludes",
        "randomize_addresses",
        "read_timeout",
        "root_certificate",
        "timeout",
        "user_agent",
    }
)
_DURATIONS = frozenset({"connect_timeout", "timeout", "pool_idle_timeout", "read_timeout"})
_ANON = ("anon", "anonymous", "skip_signature")
_ALIASES: dict[str, dict[str, str]] = {
    "s3": {
        "endpoint_url": "endpoint",
        "key": "access_key_id",
        "aws_access_key_id": "access_key_id",
        "secret": "secret_access_key",
        "aws_secret_access_key": "secret_access_key",
        "token": "session_token",
        "aws_session_token": "session_token",
        "region_name": "region",
    },
    "gcs": {"endpoint_url": "base_url", "endpoint": "base_url"},
    "azure": {
        "endpoint_url": "endpoint",
        "account": "account_name",
        "sas_token": "sas_key",
    },
}
_ENDPOINT_KEY = {"s3": "endpoint", "gcs": "base_url", "azure": "endpoint"}
_IGNORED = {"gcs": ("project",)}  # gcsfs needs it; GCS object requests do not


@dataclass(frozen=True)
class CloudOptions:
    """One cloud's options, split into obstore's store config, client and retry settings."""

    cloud: str
    config: Mapping[str, Any] = field(default_factory=dict)
    client: Mapping[str, Any] = field(default_factory=dict)
    retry: Mapping[str, Any] = field(default_factory=dict)
    profile: str | None = None  # S3 only: a named AWS profile, resolved through boto3

    def __post_init__(self) -> None:
        if self.cloud not in CLOUDS:
            raise ValueError(f"cloud must be one of {CLOUDS}, got {self.cloud!r}")


def cloud_options(cloud: str, storage_options: Mapping[str, Any] | None) -> CloudOptions:
    """Validate ``storage_options`` for ``cloud`` (``"s3"``, ``"gcs"``, ``"azure"``)."""
    if cloud not in CLOUDS:
        raise ValueError(f"cloud must be one of {CLOUDS}, got {cloud!r}")
    given = dict(storage_options or {})
    config: dict[str, Any] = {}
    client: dict[str, Any] = dict(DEFAULT_CLIENT)
    retry: dict[str, Any] = dict(DEFAULT_RETRY)
    client.update(_mapping(given.pop("client_options", None), "client_options"))
    retry.update(_mapping(given.pop("retry_config", None), "retry_config"))
    profile = given.pop("profile", None) if cloud == "s3" else None
    for name in _IGNORED.get(cloud, ()):
        given.pop(name, None)
    if cloud == "s3" and "client_kwargs" in given:  # s3fs: endpoint and region live here
        kwargs = _mapping(given.pop("client_kwargs"), "client_kwargs")
        given.update({k: v for k, v in kwargs.items() if k in ("endpoint_url", "region_name")})
    if cloud == "gcs" and "token" in given:
        config.update(_gcs_token(given.pop("token")))
    if cloud == "azure" and "connection_string" in given:
        config.update(_azure_connection_string(str(given.pop("connection_string"))))
    for name, value in given.items():
        if name in _ANON:
            config["skip_signature"] = _flag(value, name)
        elif name == "max_retries":
            retry["max_retries"] = _count(value, name)
        elif name == "retry_timeout":
            retry["retry_timeout"] = _duration(value, name)
        elif name in _CLIENT_KEYS:
            client[name] = _duration(value, name) if name in _DURATIONS else value
        else:
            config[_ALIASES[cloud].get(name, name)] = value
    endpoint = str(config.get(_ENDPOINT_KEY[cloud], ""))
    if endpoint.startswith("http://"):
        client.setdefault("allow_http", True)
    if profile is not None and not isinstance(profile, str):
        raise ValueError(f"storage option 'profile' must be a profile name, got {profile!r}")
    return CloudOptions(cloud, config, client, retry, profile)


_UNIT_SECONDS = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h)\s*")


def seconds(value: Any) -> float:
    """A duration as :func:`_duration` keeps it (timedelta, number or ``"1m 30s"``), in
    seconds; 0 for nothing."""
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value or "").strip().lower()
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f"{value!r} is not a duration such as '30s', '2m' or '1m 30s'")
    return total


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"storage option {name!r} must be a dict, got {type(value).__name__}")
    return dict(value)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ValueError(f"storage option {name!r} must be true or false, got {value!r}")


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"storage option {name!r} must be a whole number >= 0, got {value!r}")
    return value


def _duration(value: Any, name: str) -> dt.timedelta | str:
    """Seconds (int/float), a ``timedelta``, or a duration string obstore parses (``"30s"``)."""
    try:
        span = -1.0 if isinstance(value, bool) or value is None else seconds(value)
    except (TypeError, ValueError):
        span = -1.0
    if span <= 0:
        raise ValueError(
            f"storage option {name!r} must be a positive number of seconds, a timedelta or a "
            f"duration such as '30s', got {value!r}"
        )
    if isinstance(value, str):
        return value.strip()
    return dt.timedelta(seconds=span)


def _gcs_token(token: Any) -> dict[str, Any]:
    """gcsfs's ``token``: ``"anon"``, a service-account JSON file or dict, or an OAuth token."""
    if token in ("anon", None):
        return {"skip_signature": True}
    if isinstance(token, Mapping):
        return {"service_account_key": json.dumps(dict(token))}
    if isinstance(token, (str, os.PathLike)):
        text = os.fspath(token)
        if text.endswith(".json") or os.path.isfile(text):
            return {"service_account": text}
        return {"bearer_token": text}
    raise ValueError(
        "storage option 'token' for gs:// must be 'anon', a service-account JSON path or dict, "
        f"or an OAuth bearer token, got {type(token).__name__}"
    )


def _azure_connection_string(text: str) -> dict[str, Any]:
    """The account, key or SAS, and blob endpoint of an Azure connection string."""
    fields = dict(part.split("=", 1) for part in text.split(";") if "=" in part)
    names = {
        "AccountName": "account_name",
        "AccountKey": "account_key",
        "SharedAccessSignature": "sas_key",
        "BlobEndpoint": "endpoint",
    }
    config = {ours: fields[theirs] for theirs, ours in names.items() if fields.get(theirs)}
    if not config.get("account_name") and not config.get("endpoint"):
        raise ValueError(
            "storage option 'connection_string' has neither AccountName nor BlobEndpoint; "
            "copy it whole from the storage account's 'Access keys' page"
        )
    return config
