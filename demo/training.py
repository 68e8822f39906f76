"""The demo's training process: ``python -m demo.training --data DIR --work DIR [...]``.

Trains :class:`~demo.model.DigitsCNN` on ``DIR/train`` with a shuffled StreamingDataLoader
(2 workers, the pixel scaling done in the workers by a FieldSpec), showing a tqdm bar and the
loader's statistics per epoch. ``--checkpoint-at E:S`` saves model, optimizer and loader
state after step S of epoch E; ``--crash-at E:S`` then kills this process (SIGKILL: no
clean-up runs, as when a node is lost). ``--resume`` rebuilds everything from the checkpoint
file and continues. The ids of every trained batch are appended to ``WORK/ids-<run>.jsonl``
so the parent can compare them with the uninterrupted order. At the end the held-out
accuracy on ``DIR/test`` goes to ``WORK/result.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from demo.model import DigitsCNN, accuracy, scale_pixels, train_step
from loader import FieldSpec, StreamingDataLoader, StreamingDataset

SEED = 42
FIELDS = [FieldSpec("image", transform=scale_pixels)]


def train_loader(data: Path, batch_size: int, workers: int) -> StreamingDataLoader:
    dataset = StreamingDataset(
        local=str(data / "train"), batch_size=batch_size, shuffle=True, shuffle_seed=SEED
    )
    return StreamingDataLoader(dataset, batch_size=batch_size, num_workers=workers, fields=FIELDS)


def held_out_accuracy(model: DigitsCNN, data: Path) -> float:
    dataset = StreamingDataset(local=str(data / "test"), batch_size=128)
    batches = list(StreamingDataLoader(dataset, batch_size=128, fields=FIELDS))
    # One device pads nothing (the last batch is partial): every sample exactly once.
    n = dataset.num_samples
    images = torch.cat([b["image"] for b in batches])[:n]
    labels = torch.cat([b["label"] for b in batches])[:n]
    return accuracy(model, [{"image": images, "label": labels}])


def _save(path: Path, checkpoint: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)  # a crash mid-save never leaves a half-written checkpoint


def _at(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    epoch, step = text.split(":")
    return int(epoch), int(step)


def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)  # tiny model; the 2 loader workers get the other cores
    torch.manual_seed(0)
    data, work = Path(args.data), Path(args.work)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = train_loader(data, args.batch_size, args.workers)
    checkpoint_path, global_step, start_epoch = work / "checkpoint.pt", 0, 0
    if args.resume:
        checkpoint = torch.load(checkpoint_path, weights_only=True)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        loader.load_state_dict(checkpoint["loader"])
        global_step, start_epoch = checkpoint["global_step"], checkpoint["loader"]["epoch"]
        sample = checkpoint["loader"]["sample_in_epoch"]
        print(f"      resumed at epoch {start_epoch}, sample {sample}", flush=True)
    checkpoint_at, crash_at = _at(args.checkpoint_at), _at(args.crash_at)
    with open(work / f"ids-{args.run}.jsonl", "a") as ids_log:
        for epoch in range(start_epoch, args.epochs):
            done = loader.state_dict()["sample_in_epoch"] // args.batch_size
            bar = tqdm(loader, desc=f"epoch {epoch}", initial=done, total=len(loader), leave=False)
            for step, batch in enumerate(bar, start=done + 1):
                loss = train_step(model, optimizer, batch)
                global_step += 1
                ids_log.write(json.dumps(batch["id"].tolist()) + "\n")
                ids_log.flush()
                bar.set_postfix(loss=f"{loss:.3f}")
                if (epoch, step) == checkpoint_at:
                    state = loader.state_dict()
                    _save(checkpoint_path, {
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "loader": state, "global_step": global_step,
                    })  # fmt: skip
                    tqdm.write(
                        f"      checkpoint saved after epoch {epoch}, step {step}: loader state "
                        f"epoch={state['epoch']}, sample_in_epoch={state['sample_in_epoch']}"
                    )
                if (epoch, step) == crash_at:
                    tqdm.write(f"      crash: SIGKILL at epoch {epoch}, step {step}")
                    sys.stdout.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            bar.close()
            print(f"      epoch {epoch}: {loader.stats()}", flush=True)
    result = {"accuracy": held_out_accuracy(model, data), "global_step": global_step}
    (work / "result.json").write_text(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--run", default="run")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checkpoint-at")
    parser.add_argument("--crash-at")
    parser.add_argument("--resume", action="store_true")
    result = run(parser.parse_args(argv))
    print(f"      held-out accuracy {result['accuracy']:.2%}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
