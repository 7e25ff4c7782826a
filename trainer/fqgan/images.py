"""Image files on disk: recursive discovery, decoding, and the reference (ADM) crops. No torch here."""
from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm")


def list_image_files(root: str, within: Optional[str] = None) -> List[str]:
    """Every file under root with an image extension, recursively, in a stable sorted order.

    Works for ImageFolder-style trees (root/class/x.jpg) and flat folders alike; hidden files and
    folders are ignored. See walk_image_files for `within`.
    """
    return walk_image_files(root, within)[0]


def walk_image_files(root: str, within: Optional[str] = None) -> Tuple[List[str], List[str]]:
    """(image files, links leading out of `within`) under root, both sorted.

    Symbolic links are followed, each real folder once (a link back up is not a loop). With `within`,
    a file or folder whose real path is outside it is never listed, opened or descended into: it is
    returned as "outside" for the caller to refuse.
    """
    limit = os.path.realpath(within) if within else None
    if limit and not is_inside(os.path.realpath(root), limit):
        return [], [root]
    found: List[str] = []
    outside: List[str] = []
    seen = {os.path.realpath(root)}
    for folder, dirs, files in os.walk(root, followlinks=True):
        kept = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            real = os.path.realpath(os.path.join(folder, name))
            if limit and not is_inside(real, limit):
                outside.append(os.path.join(folder, name))
            elif real not in seen:
                seen.add(real)
                kept.append(name)
        dirs[:] = kept
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                path = os.path.join(folder, name)
                if limit and not is_inside(os.path.realpath(path), limit):
                    outside.append(path)
                else:
                    found.append(path)
    return sorted(found), sorted(outside)


def is_inside(real_path: str, real_root: str) -> bool:
    """True when real_path is real_root or below it (both already resolved by os.path.realpath)."""
    return os.path.commonpath([real_path, real_root]) == real_root


@dataclass
class ImageList:
    """The files of a dataset folder that opened as images, those that did not, and links leading out."""

    paths: List[str]
    unreadable: List[str] = field(default_factory=list)
    outside: List[str] = field(default_factory=list)  # never opened


def scan_images(root: str, within: Optional[str] = None) -> ImageList:
    """Find images under root; a file whose header PIL cannot parse is reported, not used."""
    good, bad = [], []
    paths, outside = walk_image_files(root, within)
    for path in paths:
        try:
            with Image.open(path) as image:
                image.size  # header only: cheap, and catches non-images and empty files
            good.append(path)
        except Exception:
            bad.append(path)
    return ImageList(good, bad, outside)


# The most images a default hold-out takes.
DEFAULT_HOLDOUT = 16


def holdout_count(found: int, eval_images: Optional[int]) -> int:
    """How many of `found` images are held out for evaluation: `eval_images` when set (at most all
    of them); when null, a tenth of the dataset, at least one from two images up and at most
    DEFAULT_HOLDOUT, so that a small dataset keeps nearly all of itself for training."""
    if eval_images is not None:
        return min(eval_images, found)
    return 0 if found < 2 else min(DEFAULT_HOLDOUT, max(1, found // 10))


def split_holdout(paths: Sequence[str], count: int, seed: int) -> Tuple[List[str], List[str]]:
    """(train, held-out): `count` files chosen by a seeded shuffle are held out of training."""
    order = list(paths)
    random.Random(seed).shuffle(order)
    held = sorted(order[:count])
    held_set = set(held)
    return [p for p in paths if p not in held_set], held


def load_rgb(path: str) -> Image.Image:
    """Decode fully and convert to RGB (alpha dropped, as PIL's convert does); raises on a bad file.

    16-bit greyscale (modes I;16*, and I from a 16-bit PNG) keeps its high byte, as the service does
    (docs/preprocessing.md): PIL's own convert would clip it to white.
    """
    with Image.open(path) as image:
        image.load()
        if image.mode.startswith("I;16") or (image.mode == "I" and image.format == "PNG"):
            high = np.right_shift(np.asarray(image, dtype=np.uint32), 8).astype(np.uint8)
            return Image.fromarray(high, mode="L").convert("RGB")
        return image.convert("RGB")


def first_decodable(paths: Iterable[str]) -> Tuple[Optional[str], List[str]]:
    """The first path that decodes, and the ones that failed before it."""
    failed: List[str] = []
    for path in paths:
        try:
            load_rgb(path)
            return path, failed
        except Exception:
            failed.append(path)
    return None, failed


def _halve_while_large(image: Image.Image, short_side: int) -> Image.Image:
    # BOX-halving first keeps large downscales from aliasing (ADM's trick, kept by the reference).
    while min(*image.size) >= 2 * short_side:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = short_side / min(*image.size)
    return image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)


def center_crop(image: Image.Image, size: int) -> np.ndarray:
    """ADM centre crop: halve, bicubic-resize the short side to size, crop the centre. HWC uint8."""
    arr = np.asarray(_halve_while_large(image, size))
    y = (arr.shape[0] - size) // 2
    x = (arr.shape[1] - size) // 2
    return np.ascontiguousarray(arr[y:y + size, x:x + size])


def random_crop(image: Image.Image, size: int, rng: random.Random,
                min_crop_frac: float = 0.8, max_crop_frac: float = 1.0) -> np.ndarray:
    """Reference training crop: short side drawn in [size/max_frac, size/min_frac], random offset. HWC uint8."""
    low = math.ceil(size / max_crop_frac)
    high = math.ceil(size / min_crop_frac)
    arr = np.asarray(_halve_while_large(image, rng.randrange(low, high + 1)))
    y = rng.randrange(arr.shape[0] - size + 1)
    x = rng.randrange(arr.shape[1] - size + 1)
    return np.ascontiguousarray(arr[y:y + size, x:x + size])


def to_unit_range(arr: np.ndarray) -> np.ndarray:
    """HWC uint8 -> CHW float32 in [-1, 1], as ToTensor + Normalize(0.5, 0.5) computes it."""
    return (arr.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
