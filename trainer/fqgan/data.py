"""Training and evaluation data: image datasets, a resumable per-rank sampler, and the loaders.

Augmentation randomness comes from a seed per (epoch, image) that the sampler hands out, so a run
is repeatable whatever the worker count and a resumed run sees exactly the batches it would have.
Files that cannot be decoded are skipped and reported, never fatal.
"""
from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .images import center_crop, load_rgb, random_crop, to_unit_range
from .stopping import worker_dies_with

_MAX_RETRIES = 16  # replacements tried for an unreadable file before giving up on the sample


@dataclass
class Batch:
    images: torch.Tensor  # [B, 3, S, S] float32 in [-1, 1]
    skipped: List[str]  # files that failed to decode while this batch was built

    def pin_memory(self) -> "Batch":
        return Batch(self.images.pin_memory(), self.skipped)


class TrainImages(Dataset):
    """Items are keyed (index, sample_seed): reference random crop + horizontal flip from that seed."""

    def __init__(self, paths: Sequence[str], image_size: int) -> None:
        self.paths = list(paths)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: Tuple[int, int]) -> Tuple[torch.Tensor, List[str]]:
        index, sample_seed = key
        rng = random.Random(sample_seed)
        skipped: List[str] = []
        for _ in range(_MAX_RETRIES):
            path = self.paths[index]
            try:
                arr = random_crop(load_rgb(path), self.image_size, rng)
            except Exception:
                skipped.append(path)
                if len(self.paths) > 1:  # a deterministic stand-in, never the same file again
                    index = (index + 1 + rng.randrange(len(self.paths) - 1)) % len(self.paths)
                continue
            if rng.random() < 0.5:
                arr = arr[:, ::-1]
            return torch.from_numpy(to_unit_range(arr)), skipped
        raise RuntimeError(f"{_MAX_RETRIES} images in a row failed to decode; last: {skipped[-1]}")


class EvalImages(Dataset):
    """Reference centre crop; an unreadable file yields None and is dropped by the collate."""

    def __init__(self, paths: Sequence[str], image_size: int) -> None:
        self.paths = list(paths)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tuple[Optional[torch.Tensor], List[str]]:
        try:
            arr = center_crop(load_rgb(self.paths[index]), self.image_size)
        except Exception:
            return None, [self.paths[index]]
        return torch.from_numpy(to_unit_range(arr)), []


def collate(items: Sequence[Tuple[Optional[torch.Tensor], List[str]]]) -> Batch:
    images = [image for image, _ in items if image is not None]
    skipped = [path for _, paths in items for path in paths]
    return Batch(torch.stack(images) if images else torch.empty(0), skipped)


class MicroBatchSampler(Sampler):
    """Endless micro-batches of (index, sample_seed) for one rank, starting at micro-batch `start`.

    Each epoch is a seeded permutation cut to a multiple of world_size * micro_batch (drop_last),
    dealt round-robin to the ranks. Micro-batch k is a pure function of (seed, k), which is what
    makes resuming exact.
    """

    def __init__(self, size: int, micro_batch: int, seed: int, rank: int = 0, world_size: int = 1,
                 start: int = 0) -> None:
        self.size, self.micro_batch, self.seed = size, micro_batch, seed
        self.rank, self.world_size, self.start = rank, world_size, start
        self.per_epoch = (size // world_size) // micro_batch
        if self.per_epoch == 0:
            raise ValueError(f"{size} images are too few for {world_size} x {micro_batch} images per micro-batch")

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        epoch, skip = divmod(self.start, self.per_epoch)
        while True:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
            mine = order[: self.per_epoch * self.micro_batch * self.world_size][self.rank::self.world_size]
            for b in range(skip, self.per_epoch):
                chunk = mine[b * self.micro_batch:(b + 1) * self.micro_batch]
                yield [(i, (self.seed * 1_000_003 + epoch) * 1_000_003 + i) for i in chunk]
            epoch, skip = epoch + 1, 0


def _worker_init(num_workers: int):
    return functools.partial(worker_dies_with, os.getpid()) if num_workers else None


def train_loader(paths: Sequence[str], image_size: int, sampler: MicroBatchSampler, num_workers: int,
                 pin_memory: bool = False) -> DataLoader:
    return DataLoader(TrainImages(paths, image_size), batch_sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, pin_memory=pin_memory,
                      worker_init_fn=_worker_init(num_workers))


def eval_loader(paths: Sequence[str], image_size: int, batch_size: int, num_workers: int = 0) -> DataLoader:
    return DataLoader(EvalImages(paths, image_size), batch_size=batch_size, shuffle=False, collate_fn=collate,
                      num_workers=num_workers, worker_init_fn=_worker_init(num_workers))
