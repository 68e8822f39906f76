"""The README's LightningDataModule, run by a real Lightning Trainer: a checkpoint taken
mid-epoch holds the loader's state, and a run resumed from it trains exactly the batches the
uninterrupted run trains next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from loader import StreamingDataLoader, StreamingDataset

L = pytest.importorskip("lightning")

# Lightning's own warnings (tips, deprecations in its dependencies) are not what is tested.
pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning"
)


class ShardsModule(L.LightningDataModule):  # as in the README's migration section
    def __init__(self, local: str, batch_size: int = 16, workers: int = 0) -> None:
        super().__init__()
        self.local, self.batch_size, self.workers = local, batch_size, workers

    def train_dataloader(self) -> StreamingDataLoader:
        ds = StreamingDataset(
            local=self.local, shuffle=True, shuffle_seed=9, batch_size=self.batch_size
        )
        return StreamingDataLoader(ds, batch_size=self.batch_size, num_workers=self.workers)


class Recorder(L.LightningModule):
    """A one-weight model that records the sample ids of every training step."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def training_step(self, batch: dict[str, Any], index: int) -> torch.Tensor:
        self.seen.append(batch["id"].tolist())
        return (self.weight - batch["label"].float().mean()) ** 2

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(steps: int) -> Any:
    return L.Trainer(
        max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
    )  # fmt: skip


@pytest.mark.parametrize("workers", [0, 2])
def test_lightning_resumes_mid_epoch_exactly(
    small_dataset: Path, tmp_path: Path, workers: int
) -> None:
    whole = Recorder()
    _trainer(12).fit(whole, ShardsModule(str(small_dataset), workers=workers))
    first = Recorder()
    trainer = _trainer(5)
    trainer.fit(first, ShardsModule(str(small_dataset), workers=workers))
    checkpoint = tmp_path / "mid-epoch.ckpt"
    trainer.save_checkpoint(checkpoint)
    resumed = Recorder()
    _trainer(12).fit(
        resumed, ShardsModule(str(small_dataset), workers=workers), ckpt_path=checkpoint
    )
    assert len(whole.seen) == 12 and first.seen == whole.seen[:5]
    assert resumed.seen == whole.seen[5:]  # not the epoch's start again, not skipped batches
