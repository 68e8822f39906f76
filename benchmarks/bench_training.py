"""Training-loop benchmark: ours vs Mosaic's StreamingDataLoader, same files, same settings.

    python -m benchmarks training [-- --samples 60000 --batch 64 --workers 2 --epochs 1]

The dataset is scikit-learn's digits (real 8x8 images, ``id``, ``image`` as
``ndarray:uint8:8,8``, ``label``), tiled to ``--samples`` rows and written once, uncompressed.
Both loaders read it shuffled with the same batch size and worker count, deliver
``uint8`` image tensors, and the loop does the same work on them:

- ``model``: one training step of the demo's CNN (:mod:`demo.model`, one torch thread),
- ``none``: no model; the loop only scales the pixels (how fast data arrives at all).

Each loop is timed the same way in both environments: ``samples/s`` over the whole run
(worker start-up included) and the data-wait fraction, the share of that time the loop
spent inside ``next()`` waiting for a batch; with p50/p99 of the per-step wait.

``--device cuda`` trains on the GPU: ours with ``device="cuda"`` (pinned batches copied on a
side stream ahead of the step), Mosaic's with ``pin_memory=True`` and a ``non_blocking`` copy
in the loop, as its users write it. Ours then also reports the host-to-device bandwidth of
pinned copies and the peak pinned host memory of the run.

This module imports only numpy and benchmarks.common at the top: mosaic_training.py (the
peer venv) reuses :func:`timed_loop` and :func:`loop_work`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    Ratio,
    emit_result,
    machine_note,
    main_python,
    mosaic_python,
    output_dir,
    print_ratios,
    run_child,
)

ME = "benchmarks.bench_training"
PEER = "benchmarks/mosaic_training.py"
SEED = 17
LOOPS = ("model", "none")


def loop_work(kind: str, device: str = "cpu") -> Callable[[dict[str, Any]], None]:
    """What the loop does with each batch ``{"image": uint8 (B, 8, 8), "label": ...}``
    (moved to ``device`` first if it is not there yet)."""
    import torch

    from demo.model import DigitsCNN, train_step

    torch.set_num_threads(1)
    target = torch.device(device)

    def on_device(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(target, non_blocking=True) for k, v in batch.items()}

    if kind == "none":

        def scale_only(batch: dict[str, Any]) -> None:
            on_device(batch)["image"].float().div_(16.0)

        return scale_only
    if kind != "model":
        raise ValueError(f"loop must be one of {LOOPS}, got {kind!r}")
    torch.manual_seed(0)
    model = DigitsCNN().to(target)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def step(batch: dict[str, Any]) -> None:
        batch = on_device(batch)
        image = batch["image"].float().div_(16.0).unsqueeze(1)  # (B, 1, 8, 8)
        train_step(model, optimizer, {"image": image, "label": batch["label"]})

    return step


def synchronize(device: str) -> None:
    """Wait for queued GPU work, so the wall time covers it."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed_loop(
    make_epoch: Callable[[], Iterable[dict[str, Any]]],
    work: Callable[[dict[str, Any]], None],
    epochs: int,
    finish: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run ``epochs`` epochs; time spent waiting in ``next()`` vs the whole run."""
    waits: list[float] = []
    samples = 0
    began = time.perf_counter()
    for _ in range(epochs):
        iterator = iter(make_epoch())
        while True:
            asked = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            waits.append(time.perf_counter() - asked)
            samples += len(batch["label"])
            work(batch)
    finish()
    seconds = time.perf_counter() - began
    array = np.asarray(waits or [0.0])
    return {
        "samples": samples,
        "seconds": seconds,
        "wait_seconds": float(array.sum()),
        "wait_p50_ms": float(np.percentile(array, 50) * 1e3),
        "wait_p99_ms": float(np.percentile(array, 99) * 1e3),
    }


# --- child (main venv) ----------------------------------------------------------------


def child(
    path: str, loop: str, batch: int, workers: int, epochs: int, device: str
) -> dict[str, Any]:
    from loader import StreamingDataLoader, StreamingDataset

    work = loop_work(loop, device)
    dataset = StreamingDataset(local=path, batch_size=batch, shuffle=True, shuffle_seed=SEED)
    placement = {} if device == "cpu" else {"device": device}
    loader = StreamingDataLoader(dataset, batch_size=batch, num_workers=workers, **placement)
    result = timed_loop(lambda: loader, work, epochs, lambda: synchronize(device))
    result["loader_stats"] = str(loader.stats())
    if device != "cpu":
        result.update(gpu_note())
    return result


def gpu_note() -> dict[str, float]:
    """Peak pinned host memory so far, then the bandwidth of 256 MiB pinned copies."""
    import torch

    pinned = torch.cuda.host_memory_stats().get("allocated_bytes.peak", 0) / 2**20
    host = torch.empty(256 * 2**20, dtype=torch.uint8).pin_memory()
    device = torch.empty_like(host, device="cuda")
    device.copy_(host, non_blocking=True)  # warm-up
    torch.cuda.synchronize()
    began, copies = time.perf_counter(), 10
    for _ in range(copies):
        device.copy_(host, non_blocking=True)
    torch.cuda.synchronize()
    gbps = copies * host.numel() / (time.perf_counter() - began) / 1e9
    return {"h2d_gbps": gbps, "peak_pinned_mib": pinned}


# --- data and orchestration -----------------------------------------------------------


def prepare(samples: int) -> Path:
    """Digits tiled to ``samples`` rows (ids unique), written once and reused."""
    import pyarrow as pa
    from sklearn.datasets import load_digits

    from sparkshard import ShardWriter

    path = output_dir("training") / f"digits-{samples}"
    if (path / "index.json").exists():
        return path
    digits = load_digits()
    take = np.arange(samples) % len(digits.target)
    images = digits.images.astype(np.uint8)[take]  # (samples, 8, 8)
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), False),
            pa.field("image", pa.list_(pa.list_(pa.uint8(), 8), 8), False),
            pa.field("label", pa.int8(), False),
        ]
    )
    rows = pa.FixedSizeListArray.from_arrays(
        pa.FixedSizeListArray.from_arrays(pa.array(images.reshape(-1)), 8), 8
    )
    ids, labels = pa.array(np.arange(samples)), pa.array(digits.target[take].astype(np.int8))
    table = pa.Table.from_arrays([ids, rows, labels], schema=schema)
    with ShardWriter(path, compression=None, size_limit="256KB") as writer:
        writer.write_batch(table)
    return path


def _rates(result: dict[str, Any]) -> tuple[float, float]:
    return result["samples"] / result["seconds"], result["wait_seconds"] / result["seconds"]


def run(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks training --")
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--skip-mosaic", action="store_true")
    opts = parser.parse_args(args)
    peer = None if opts.skip_mosaic else mosaic_python()
    if peer is None and not opts.skip_mosaic:
        print("the Mosaic peer venv is missing (make setup): Mosaic columns will read 0")
    path = prepare(opts.samples)
    settings = ["--batch", str(opts.batch), "--workers", str(opts.workers)]
    settings += ["--epochs", str(opts.epochs), "--device", opts.device]
    rows: list[Ratio] = []
    for loop in LOOPS:
        argv = [path, "--loop", loop, *settings]
        ours = run_child([main_python(), "-m", ME, "child", *argv]).result
        o_sps, o_wait = _rates(ours)
        t_sps = t_wait = 0.0
        waits = f"wait p50/p99 ours {ours['wait_p50_ms']:.2f}/{ours['wait_p99_ms']:.1f} ms"
        if peer is not None:
            theirs = run_child([peer, PEER, *argv]).result
            t_sps, t_wait = _rates(theirs)
            waits += f", mosaic {theirs['wait_p50_ms']:.2f}/{theirs['wait_p99_ms']:.1f} ms"
        print(f"  ours, loop={loop}: {ours['loader_stats']}")
        if "h2d_gbps" in ours:
            print(
                f"  ours, loop={loop}: host-to-device {ours['h2d_gbps']:.1f} GB/s (pinned), "
                f"peak pinned host memory {ours['peak_pinned_mib']:.1f} MiB"
            )
        label = "demo CNN" if loop == "model" else "no model"
        rows.append(Ratio(f"{label} samples/s", o_sps, t_sps, "samples/s"))
        rows.append(Ratio(f"{label} data-wait fraction", o_wait, t_wait, "share", False, waits))
    title = (
        f"training loop, {opts.samples:,} digits, shuffled, batch {opts.batch}, "
        f"{opts.workers} workers, {opts.epochs} epoch(s), {opts.device} ({machine_note()})"
    )
    print_ratios(title, rows)


def main(argv: list[str]) -> None:
    if argv and argv[0] == "child":
        parser = argparse.ArgumentParser()
        parser.add_argument("path")
        parser.add_argument("--loop", choices=LOOPS, required=True)
        parser.add_argument("--batch", type=int, required=True)
        parser.add_argument("--workers", type=int, required=True)
        parser.add_argument("--epochs", type=int, required=True)
        parser.add_argument("--device", default="cpu")
        a = parser.parse_args(argv[1:])
        emit_result(child(a.path, a.loop, a.batch, a.workers, a.epochs, a.device))
    else:
        run(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
