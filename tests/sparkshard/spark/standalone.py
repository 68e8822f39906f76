"""A Spark standalone cluster on this machine, for what local mode cannot do: speculation.

    with standalone_cluster(["127.0.0.1", "127.0.0.2"], work_dir) as master: ...

Local mode never speculates, and Spark never runs a speculative copy on a host where the
task already has an attempt. Each worker here (one core) binds a loopback address of its
own, so Spark sees as many hosts as there are workers. Linux routes all of 127.0.0.0/8
to the loopback device, so no setup is needed. Logs go to ``work_dir/cluster.log``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

_MASTER_URL = re.compile(rb"Starting Spark master at (spark://\S+)")


@contextmanager
def standalone_cluster(hosts: list[str], work_dir: Path, timeout: float = 120.0) -> Iterator[str]:
    """Start a master on ``hosts[0]`` and a one-core worker per host; yield the master URL."""
    import pyspark

    home = Path(pyspark.__file__).parent
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_NO_DAEMONIZE": "1"}
    spark_class = str(home / "bin" / "spark-class")
    log_path = work_dir / "cluster.log"
    with ExitStack() as stack:
        log = stack.enter_context(log_path.open("ab"))

        def start(*args: str) -> None:
            proc = subprocess.Popen([spark_class, *args], env=env, stdout=log, stderr=log)
            stack.callback(_stop, proc)

        start("org.apache.spark.deploy.master.Master", "--host", hosts[0], "--port", "0",
              "--webui-port", "0")  # fmt: skip
        master = _master_url(log_path, timeout)
        for i, host in enumerate(hosts):
            start("org.apache.spark.deploy.worker.Worker", "--host", host, "--cores", "1",
                  "--memory", "1g", "--webui-port", "0", "--work-dir",
                  str(work_dir / f"worker-{i}"), master)  # fmt: skip
        yield master


def _master_url(log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _MASTER_URL.search(log_path.read_bytes())
        if found:
            return found.group(1).decode()
        time.sleep(0.1)
    raise TimeoutError(f"the Spark master did not start within {timeout:.0f} s: see {log_path}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # spark-class execs java: this reaches the master or worker itself
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
