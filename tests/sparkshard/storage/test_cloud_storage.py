"""Cloud backends beyond the contract: errors, credentials, options, retries, fork safety."""

from __future__ import annotations

import base64
import datetime as dt
import json
import multiprocessing
import threading
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import AZURITE_ACCOUNT, AZURITE_KEY, MotoServer, free_port, serving

from sparkshard.errors import StorageError
from sparkshard.storage import CloudStore, cloud_options, open_store

OTHER_KEY = base64.b64encode(b"not the account key" * 4).decode()
S3_NATIVE = ("endpoint", "access_key_id", "secret_access_key", "region")


def _s3(server: Any, **extra: Any) -> CloudStore:
    store = open_store(f"{server.new_bucket()}/ds", {**server.storage_options, **extra})
    assert isinstance(store, CloudStore)
    return store


def test_missing_bucket_is_named(s3_server: Any) -> None:
    store = open_store("s3://no-such-bucket-here/ds", s3_server.storage_options)
    for op in (
        lambda: store.read("index.json"),
        store.list,
        lambda: store.write("k", b""),
    ):
        with pytest.raises(FileNotFoundError, match="'no-such-bucket-here' does not exist"):
            op()


def test_missing_object_names_the_url(s3_server: Any) -> None:
    store = _s3(s3_server)
    with pytest.raises(FileNotFoundError, match=f"{store.url}/index.json does not exist"):
        store.read("index.json")


def test_denied_access_names_url_and_credentials(azure_server: Any) -> None:
    url = f"{azure_server.new_bucket()}/ds"
    good = open_store(url, azure_server.storage_options)
    good.write("k", b"secret")
    wrong_key = {**azure_server.storage_options, "account_key": OTHER_KEY}
    bad = open_store(url, wrong_key)
    with pytest.raises(PermissionError, match=rf"{url}/k.*account_key"):
        bad.read("k")
    with pytest.raises(PermissionError):
        bad.write("k", b"overwritten")
    assert good.read("k") == b"secret"


def test_anonymous_access_on_s3(s3_server: Any) -> None:
    url = f"{s3_server.new_bucket()}/ds"
    bucket = url.removeprefix("s3://").split("/")[0]
    open_store(url, s3_server.storage_options).write("k", b"public")
    anon = open_store(url, {"endpoint_url": s3_server.endpoint_url, "anon": True})
    with pytest.raises(PermissionError, match=rf"{url}/k.*key/secret"):
        anon.read("k")  # a private bucket refuses unsigned requests
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    s3_server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert anon.read("k") == b"public"


def test_azure_connection_string(azure_server: Any) -> None:
    url = f"{azure_server.new_bucket()}/ds"
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={azure_server.endpoint_url};"
    )
    open_store(url, {"connection_string": conn}).write("k", b"v")
    assert open_store(url, azure_server.storage_options).read("k") == b"v"


def test_s3_native_option_names_work_too(s3_server: Any) -> None:
    aliased = _s3(s3_server)
    aliased.write("k", b"v")
    o = s3_server.storage_options
    native = dict(zip(S3_NATIVE, (o["endpoint_url"], o["key"], o["secret"], o["region"])))
    assert open_store(aliased.url, native).read("k") == b"v"


def test_unreachable_endpoint_is_a_storage_error_after_bounded_retries() -> None:
    port = free_port()  # nothing listens there
    store = open_store(
        "s3://bkt/ds",
        {
            "endpoint_url": f"http://127.0.0.1:{port}",
            "key": "k",
            "secret": "s",
            "region": "us-east-1",
            "max_retries": 1,
            "retry_timeout": 5,
        },
    )
    with pytest.raises(StorageError, match=r"cannot read s3://bkt/ds/k") as info:
        store.read("k")
    assert isinstance(info.value, OSError)


def test_retries_ride_out_a_server_restart() -> None:
    with serving(MotoServer()) as server:
        store = _s3(server, max_retries=8, retry_timeout=30)
        store.write("k", b"survives")
        server.stop()
        restart = threading.Timer(0.5, server.start)
        restart.start()
        try:
            assert store.read("k") == b"survives"  # retried until the server came back
        finally:
            restart.join()


def test_create_retry_that_already_landed_counts_as_ours(s3_server: Any) -> None:
    # A conditional PUT whose response was lost is retried by the client and then meets
    # its own object: identical bytes mean this writer won; different bytes do not.
    store = _s3(s3_server)
    store.write_new("v/1.json", b"mine")
    store.write_new("v/1.json", b"mine")
    with pytest.raises(FileExistsError):
        store.write_new("v/1.json", b"theirs")


def _read_in_child(store: CloudStore, queue: Any) -> None:
    try:
        queue.put(store.read("k"))
    except StorageError as exc:
        queue.put(str(exc))


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_worker_processes(s3_server: Any, method: str) -> None:
    """A store pickles into spawned workers; a forked one gets an error, never a hang."""
    store = _s3(s3_server)
    store.write("k", b"from the parent")  # this process has sent requests before the fork
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(store, queue))
    child.start()
    try:
        got = queue.get(timeout=120)
    finally:
        child.join(timeout=60)
    if method == "spawn":
        assert got == b"from the parent"
    else:
        assert "forked from process" in got and "'spawn'" in got


# --------------------------------------------------------------- options (pure, no server)


def test_aliases_map_onto_obstore_names() -> None:
    s3 = cloud_options(
        "s3",
        {"endpoint_url": "http://h:1", "key": "a", "secret": "b", "token": "t", "region_name": "r"},
    )
    assert s3.config == {
        "endpoint": "http://h:1",
        "access_key_id": "a",
        "secret_access_key": "b",
        "session_token": "t",
        "region": "r",
    }
    assert s3.client["allow_http"] is True
    assert cloud_options("s3", {"client_kwargs": {"endpoint_url": "https://h"}}).config == {
        "endpoint": "https://h"
    }
    assert "allow_http" not in cloud_options("s3", {"endpoint_url": "https://h"}).client
    gcs = cloud_options("gcs", {"endpoint_url": "http://g", "token": "ya29.x", "project": "p"})
    assert gcs.config == {"base_url": "http://g", "bearer_token": "ya29.x"}
    assert cloud_options("gcs", {"token": "/keys/sa.json"}).config == {
        "service_account": "/keys/sa.json"
    }
    az = cloud_options("azure", {"account": "acc", "sas_token": "sv=1", "anon": False})
    assert az.config == {"account_name": "acc", "sas_key": "sv=1", "skip_signature": False}


def test_defaults_are_bounded_and_overridable() -> None:
    default = cloud_options("s3", None)
    assert 0 < default.retry["max_retries"] <= 10
    assert default.retry["retry_timeout"] <= dt.timedelta(minutes=5)
    assert default.client["connect_timeout"] <= dt.timedelta(seconds=30)
    tuned = cloud_options("s3", {"max_retries": 0, "timeout": "10s", "connect_timeout": 2.5})
    assert tuned.retry["max_retries"] == 0
    assert tuned.client["timeout"] == "10s"
    assert tuned.client["connect_timeout"] == dt.timedelta(seconds=2.5)


@given(st.floats(min_value=0.001, max_value=1e6, allow_nan=False))
def test_positive_seconds_become_durations(seconds: float) -> None:
    options = cloud_options("gcs", {"timeout": seconds, "retry_timeout": seconds})
    assert options.client["timeout"] == dt.timedelta(seconds=seconds)
    assert options.retry["retry_timeout"] == dt.timedelta(seconds=seconds)


@given(st.one_of(st.floats(max_value=0), st.integers(max_value=0), st.booleans(), st.none()))
def test_non_positive_timeouts_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="'timeout'"):
        cloud_options("azure", {"timeout": value})


@pytest.mark.slow
def test_an_outage_longer_than_the_client_retries_is_ridden_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused connection exhausts obstore's own retries in seconds; the store keeps trying
    with backoff for the whole documented window (retry_timeout, 120 s by default)."""
    from sparkshard import ShardWriter
    from sparkshard.dataset.versions import read_index

    with MotoServer() as server:
        url = f"{server.new_bucket()}/ds"
        options = server.storage_options  # the default retry settings
        server.stop()
        back = threading.Timer(15.0, server.start)  # down longer than obstore's retries last
        back.start()
        try:
            with (
                caplog.at_level("WARNING", logger="sparkshard.storage._cloud"),
                ShardWriter(url, storage_options=options, size_limit=200) as writer,
            ):
                writer.write_batch(pa.table({"id": list(range(50))}))
        finally:
            back.join()
        assert "retrying in" in caplog.text  # the outage was met, and outlasted
        assert read_index(open_store(url, options)).num_samples == 50
