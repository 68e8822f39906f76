"""GPU feeding: does the loader keep a ResNet-18-sized step busy, and how fast are copies?

    python -m benchmarks gpu [-- --device cuda --workers 0,2,8 --steps 40 --batch 256]

Synthetic 224x224 RGB images (``ndarray:uint8:3,224,224``, about 150 KB each, written once,
uncompressed) and a label; the step is a ResNet-18 (11.7M parameters, written out below:
torchvision is not installed here) trained with SGD on ``channels_last`` float16 autocast.

- ``data wait``: the share of the loop's wall time spent in ``next()`` waiting for a batch,
  for ``StreamingDataLoader(device=..., prefetch_to_device=2)`` with each worker count, in
  a steady state: the first ``--warmup`` steps (the workers' start, cudnn's autotuning)
  run untimed, and the time to the first batch is reported beside it (goal on the GPU
  machine: < 1% at batch 256).
- ``host-to-device``: GB/s of ``prefetch_to_device``'s copies (a side stream, pinned
  batches, the hand-over's stream wait) against a plain pinned ``copy_`` of the same bytes.
- ``delivered to the device``: GB/s of on-device batches the loader delivers with no step
  (read, pinned, copied), per worker count, against the same plain copy.

Without CUDA it runs on the CPU (``--device cpu``) with a few small steps: that checks the
script, not the numbers. ``benchmarks/gpu_check.sh`` runs it with the GPU tests and the
worker scaling curve in one go on the device machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_training import synchronize, timed_loop
from benchmarks.common import Ratio, machine_note, output_dir, print_ratios

SEED = 17


def prepare(samples: int) -> Path:
    """``samples`` random 3x224x224 uint8 images with labels, written once and reused."""
    import pyarrow as pa

    from sparkshard import ShardWriter

    path = output_dir("gpu") / f"images-{samples}"
    if (path / "index.json").exists():
        return path
    rng = np.random.default_rng(SEED)
    with ShardWriter(
        path,
        columns={"image": "ndarray:uint8:3,224,224", "label": "int64"},
        compression=None,
        size_limit="64MB",
    ) as writer:
        for start in range(0, samples, 512):
            n = min(512, samples - start)
            images = rng.integers(0, 256, (n, 3 * 224 * 224), dtype=np.uint8)
            image = pa.array(images.reshape(-1))
            for width in (224, 224, 3):  # nested fixed-size lists: (3, 224, 224) per row
                image = pa.FixedSizeListArray.from_arrays(image, width)
            writer.write_batch(
                pa.table({"image": image, "label": pa.array(rng.integers(0, 1000, n))})
            )
    return path


def resnet18() -> Any:
    """ResNet-18 (He et al. 2015): 7x7 stem, four stages of two basic blocks, 1000 classes."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.skip = (
                nn.Identity()
                if stride == 1 and cin == cout
                else nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )
            )
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x: Any) -> Any:
            return self.relu(self.body(x) + self.skip(x))

    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    width = 64
    for out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(width, out, stride), Block(out, out, 1)]
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers)


def train_step_fn(device: str) -> Any:
    """One SGD step of ResNet-18 on a ``{"image": uint8 (B,3,224,224), "label"}`` batch."""
    import torch

    torch.manual_seed(SEED)
    target = torch.device(device)
    model = resnet18().to(target, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    amp = torch.autocast(
        target.type, dtype=torch.float16 if target.type == "cuda" else torch.bfloat16
    )

    def step(batch: dict[str, Any]) -> None:
        image = batch["image"].to(target, non_blocking=True)
        label = batch["label"].to(target, non_blocking=True)
        x = image.float().div_(255.0).contiguous(memory_format=torch.channels_last)
        with amp:
            loss = loss_fn(model(x), label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def data_wait(
    path: Path, device: str, batch: int, workers: int, steps: int, warmup: int
) -> dict[str, Any]:
    """The loop's wait in a steady state: one iterator, whose first ``warmup`` steps (the
    workers' start, cudnn's autotuning) are run but not timed, then ``steps`` timed ones.
    A real run amortizes the start over thousands of steps; it is reported on its own."""
    import itertools

    from loader import StreamingDataLoader, StreamingDataset

    ds = StreamingDataset(local=str(path), batch_size=batch, shuffle=True, shuffle_seed=SEED)
    loader = StreamingDataLoader(
        ds, batch_size=batch, num_workers=workers, device=device, prefetch_to_device=2
    )
    step = train_step_fn(device)
    began = time.perf_counter()
    iterator = iter(loader)
    first = next(iterator)
    start_seconds = time.perf_counter() - began
    step(first)
    for warm in itertools.islice(iterator, warmup - 1):
        step(warm)
    synchronize(device)
    result = timed_loop(
        lambda: itertools.islice(iterator, steps), step, 1, lambda: synchronize(device)
    )
    return {**result, "start_seconds": start_seconds}


def _gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9


def prefetch_rates(device: str, batch: int, batches: int = 40) -> tuple[float, float]:
    """(GB/s of ``DevicePrefetcher`` copying pinned host batches to the device, GB/s of a
    plain pinned ``copy_`` of the same bytes): the copy machinery alone, no reading."""
    import torch

    from loader.device import DevicePrefetcher, pin

    cuda = torch.device(device).type == "cuda"
    host = {
        "image": torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8),
        "label": torch.arange(batch),
    }
    host = pin(host) if cuda else host
    per_batch = sum(t.numel() * t.element_size() for t in host.values())
    DevicePrefetcher(iter([host] * 3), torch.device(device), 2).__next__()  # warm the streams
    synchronize(device)
    began = time.perf_counter()
    for moved in DevicePrefetcher(iter([host] * batches), torch.device(device), 2):
        moved["image"].view(-1)[:1].add_(1)  # the step uses the batch after the hand-over
    synchronize(device)
    ours = _gbps(batches * per_batch, time.perf_counter() - began)
    target = {k: torch.empty_like(v, device=device) for k, v in host.items()}
    synchronize(device)
    began = time.perf_counter()
    for _ in range(batches):
        for k, v in host.items():
            target[k].copy_(v, non_blocking=True)
    synchronize(device)
    return ours, _gbps(batches * per_batch, time.perf_counter() - began)


def delivery_rate(path: Path, device: str, batch: int, workers: int) -> float:
    """GB/s of on-device batches the loader delivers with no step, in a later epoch."""
    from loader import StreamingDataLoader, StreamingDataset

    ds = StreamingDataset(local=str(path), batch_size=batch, shuffle=True, shuffle_seed=SEED)
    loader = StreamingDataLoader(
        ds, batch_size=batch, num_workers=workers, device=device, persistent_workers=workers > 0
    )
    for _ in loader:  # the workers' start and the page cache, untimed
        pass
    began, moved = time.perf_counter(), 0
    for b in loader:
        moved += b["image"].numel() + b["label"].numel() * 8
    synchronize(device)
    return _gbps(moved, time.perf_counter() - began)


def run(args: list[str]) -> None:
    import torch

    parser = argparse.ArgumentParser(prog="python -m benchmarks gpu --")
    cuda = torch.cuda.is_available()
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--workers", default="0,2,8" if cuda else "0,2")
    parser.add_argument("--batch", type=int, default=256 if cuda else 16)
    parser.add_argument("--steps", type=int, default=40 if cuda else 3)
    parser.add_argument("--warmup", type=int, default=8 if cuda else 1)
    opts = parser.parse_args(args)
    if opts.device.startswith("cuda") and not cuda:
        raise SystemExit("--device cuda needs a CUDA build of torch and a GPU; none is here")
    samples = opts.batch * (opts.warmup + opts.steps + 2)
    path = prepare(samples)
    rows: list[Ratio] = []
    counts = [int(w) for w in opts.workers.split(",")]
    for workers in counts:
        result = data_wait(path, opts.device, opts.batch, workers, opts.steps, opts.warmup)
        share = result["wait_seconds"] / result["seconds"]
        rows.append(
            Ratio(
                f"data wait, workers={workers}",
                share * 100,
                1.0,
                "% of step time",
                False,
                note=f"{result['samples'] / result['seconds']:,.0f} samples/s, "
                f"p99 wait {result['wait_p99_ms']:.1f} ms, first batch after "
                f"{result['start_seconds']:.2f} s (untimed); goal < 1%",
            )
        )
    ours, plain = prefetch_rates(opts.device, opts.batch)
    rows.append(
        Ratio("host-to-device", ours, plain, "GB/s", note="prefetch_to_device vs plain copy_")
    )
    for workers in counts:
        rows.append(
            Ratio(
                f"delivered to the device, workers={workers}",
                delivery_rate(path, opts.device, opts.batch, workers),
                plain,
                "GB/s",
                note="read, pinned and copied, no step; vs plain pinned copy_",
            )
        )
    title = f"ResNet-18, batch {opts.batch}, {opts.device} ({machine_note()})"
    print_ratios(title, rows, theirs_name="goal / plain copy")
