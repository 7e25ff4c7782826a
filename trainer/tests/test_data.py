"""Image discovery, the reference crops, skipping unreadable files, and the resumable sampler."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from fqgan.data import MicroBatchSampler, TrainImages, collate, eval_loader, train_loader
from fqgan.images import center_crop, list_image_files, load_rgb, random_crop, scan_images, split_holdout, to_unit_range
from train_helpers import write_corrupt, write_images


def test_finds_images_recursively_and_flat(tmp_path):
    nested = write_images(str(tmp_path / "nested"), 4, nested=True)
    flat = write_images(str(tmp_path / "flat"), 3, nested=False)
    (tmp_path / "nested" / "notes.txt").write_text("not an image")
    (tmp_path / "nested" / ".hidden.png").write_bytes(b"")
    assert list_image_files(str(tmp_path / "nested")) == sorted(nested)
    assert list_image_files(str(tmp_path / "flat")) == sorted(flat)


def test_scan_reports_unreadable_files(tmp_path):
    good = write_images(str(tmp_path), 3)
    bad = write_corrupt(str(tmp_path / "class0"))
    found = scan_images(str(tmp_path))
    assert found.paths == sorted(good) and found.unreadable == [bad]


def test_center_crop_is_the_adm_crop():
    arr = np.random.default_rng(0).integers(0, 255, (32, 70, 3), dtype=np.uint8)
    # Short side already 32: no resize, crop columns (70 - 32) // 2 = 19 .. 51.
    assert np.array_equal(center_crop(Image.fromarray(arr), 32), arr[:, 19:51])
    big = Image.fromarray(np.zeros((130, 200, 3), dtype=np.uint8))
    assert center_crop(big, 32).shape == (32, 32, 3)  # halved twice (BOX) then bicubic


def test_random_crop_is_seeded_and_in_range():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 60, 3), dtype=np.uint8))
    a = random_crop(image, 32, random.Random(7))
    assert a.shape == (32, 32, 3)
    assert np.array_equal(a, random_crop(image, 32, random.Random(7)))
    crops = {random_crop(image, 32, random.Random(s)).tobytes() for s in range(8)}
    assert len(crops) > 1


def test_unit_range_matches_totensor_normalize():
    arr = np.array([[[0, 128, 255]]], dtype=np.uint8)
    assert np.allclose(to_unit_range(arr).reshape(-1), [-1.0, 128 / 255 * 2 - 1, 1.0], atol=1e-6)


def test_corrupt_image_is_skipped_and_reported(tmp_path):
    paths = write_images(str(tmp_path), 3)
    bad = write_corrupt(str(tmp_path))
    dataset = TrainImages([bad] + paths, 32)
    image, skipped = dataset[(0, 123)]
    assert image.shape == (3, 32, 32) and skipped == [bad]
    again, _ = dataset[(0, 123)]
    assert torch.equal(image, again)  # the stand-in is deterministic
    batch = collate([dataset[(0, 5)], dataset[(1, 6)]])
    assert batch.images.shape == (2, 3, 32, 32) and batch.skipped == [bad]


def test_only_corrupt_files_fail_loudly(tmp_path):
    bad = [write_corrupt(str(tmp_path), f"b{i}.png") for i in range(2)]
    with pytest.raises(RuntimeError, match="failed to decode"):
        TrainImages(bad, 32)[(0, 1)]


def test_eval_loader_drops_unreadable_files(tmp_path):
    paths = write_images(str(tmp_path), 3)
    batches = list(eval_loader(paths + [write_corrupt(str(tmp_path))], 32, batch_size=2))
    assert sum(len(b.images) for b in batches) == 3 and sum(len(b.skipped) for b in batches) == 1


def take(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_resumes_exactly_and_splits_ranks():
    full = take(MicroBatchSampler(10, 2, seed=3), 12)  # 5 per epoch: crosses two epoch boundaries
    assert take(MicroBatchSampler(10, 2, seed=3, start=7), 5) == full[7:12]
    epoch0 = [i for batch in full[:5] for i, _ in batch]
    assert sorted(epoch0) == list(range(10))
    assert full[:5] != full[5:10]  # a new permutation each epoch
    ranks = [take(MicroBatchSampler(10, 1, seed=3, rank=r, world_size=2), 5) for r in (0, 1)]
    together = sorted(k for r in ranks for batch in r for k in batch)
    assert together == sorted(k for batch in full[:5] for k in batch)  # same images, same crop seeds


def test_sampler_drops_the_last_partial_batch():
    sampler = MicroBatchSampler(7, 3, seed=0)
    assert sampler.per_epoch == 2
    with pytest.raises(ValueError, match="too few"):
        MicroBatchSampler(3, 2, seed=0, world_size=2)


def test_workers_give_the_same_batches(tmp_path):
    paths = write_images(str(tmp_path), 4)
    load = lambda workers: [b.images for _, b in zip(range(3), train_loader(  # noqa: E731
        paths, 32, MicroBatchSampler(4, 2, seed=1), num_workers=workers))]
    for a, b in zip(load(0), load(1)):
        assert torch.equal(a, b)


def test_holdout_is_seeded_and_disjoint():
    paths = [f"p{i}" for i in range(10)]
    train, held = split_holdout(paths, 3, seed=5)
    assert len(held) == 3 and not set(train) & set(held) and len(train) == 7
    assert split_holdout(paths, 3, seed=5) == (train, held)


def test_16_bit_greyscale_keeps_its_high_byte_like_the_service(tmp_path):
    """PIL alone clips mode I to white; the service keeps value >> 8 (docs/preprocessing.md)."""
    grey = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    rgb = np.asarray(load_rgb(str(tmp_path / "g16.png")))
    assert rgb.shape == (48, 64, 3)
    assert (rgb == (grey >> 8).astype(np.uint8)[..., None]).all()
