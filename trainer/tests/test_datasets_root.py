"""Datasets stay inside `datasets_root`: no file whose real path leaves it is listed or read, and a
spec whose dataset leads outside it (or is the root itself) is refused by --check and by a run."""
import os

import pytest

from fqgan.images import scan_images
from train_helpers import make_spec, run_train, save_spec, write_images


@pytest.fixture
def tree(tmp_path):
    """root/photos with real images, a link to an image and a folder outside root, a link to a file of
    another dataset inside root, and a link back to photos itself (a loop)."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    photos = root / "photos"
    real = write_images(str(photos), 4, nested=False)
    other = write_images(str(root / "other"), 1, nested=False)
    secret = write_images(str(outside), 2, nested=False)
    os.symlink(secret[0], photos / "stolen.png")
    os.symlink(outside, photos / "stolen-folder")
    os.symlink(other[0], photos / "shared.png")
    os.symlink(photos, photos / "loop")
    return root, photos, real, other


def test_listing_keeps_links_inside_the_root_and_never_returns_files_outside_it(tree):
    root, photos, real, other = tree
    found = scan_images(str(photos), within=str(root))
    assert sorted(os.path.realpath(p) for p in found.paths) == sorted(map(os.path.realpath, real + other))
    assert found.outside == [str(photos / "stolen-folder"), str(photos / "stolen.png")]
    assert found.unreadable == []


def test_without_a_root_links_are_followed_but_loops_are_not(tree):
    _, photos, real, other = tree
    found = scan_images(str(photos))
    assert len(found.paths) == len(real) + len(other) + 3 and found.outside == []  # the 2 outside + the link


def _check(tmp_path, dataset, root, name="spec.json", train=False):
    spec = make_spec(str(dataset), str(tmp_path / "out"), eval_images=0)
    spec["datasets_root"] = str(root)
    args = ["--spec", save_spec(spec, str(tmp_path / name))]
    return run_train(args if train else args + ["--check"])


def test_check_and_run_refuse_a_dataset_with_a_link_out_of_the_root(tree, tmp_path):
    root, photos, _, _ = tree
    for train in (False, True):
        code, events, _ = _check(tmp_path, photos, root, train=train)
        assert code == 2, events
        assert [e["field"] for e in events] == ["dataset"]
        assert "outside datasets_root" in events[0]["message"] and "stolen" in events[0]["message"]
        assert str(tmp_path / "outside") not in events[0]["message"]  # where the link points is not echoed


def test_check_refuses_the_root_itself_and_a_dataset_outside_it(tree, tmp_path):
    root, photos, _, _ = tree
    for dataset in (root, root / ".", tmp_path / "outside", photos / "stolen-folder"):
        code, events, _ = _check(tmp_path, dataset, root)
        assert code == 2 and [e["field"] for e in events] == ["dataset"], (dataset, events)
        assert "datasets_root" in events[0]["message"]


def test_check_accepts_a_clean_dataset_inside_the_root(tree, tmp_path):
    root, _, _, _ = tree
    code, events, _ = _check(tmp_path, root / "other", root)
    assert code == 2 and events[0]["field"] == "hyperparameters.batch_size"  # 1 image: only the size is wrong
    write_images(str(root / "clean"), 4, nested=True)
    code, events, _ = _check(tmp_path, root / "clean", root)
    assert code == 0 and [e["event"] for e in events] == ["valid"]
