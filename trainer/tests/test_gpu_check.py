"""bench/gpu-check's own logic: the merge judges what each part measured (a part that measured nothing
fails), and the env part finds the NVIDIA Vulkan driver where the loader would not."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "gpu-check", "lib")


def load(name):
    spec = importlib.util.spec_from_file_location(f"gpu_check_{name}", os.path.join(LIB, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


env = load("env")  # bench/gpu-check/lib/env.py
merge = load("merge")  # bench/gpu-check/lib/merge.py


def write_part(folder, name, status, out=None, **extra):
    (folder / f"{name}.status").write_text(json.dumps({"status": status, **extra}))
    if out is not None:
        (folder / f"{name}.out").write_text(out if isinstance(out, str) else "noise\n" + json.dumps(out) + "\n")


def test_a_part_that_measured_nothing_or_did_not_say_fails(tmp_path):
    write_part(tmp_path, "fine", "ok", {"measured": 3})
    write_part(tmp_path, "empty", "ok", {"measured": 0, "errors": ["NCHW: no adapter"]})
    write_part(tmp_path, "silent", "ok", {"figures": [1, 2]})
    write_part(tmp_path, "half", "ok", {"measured": 2, "errors": ["NHWC: shader failed"]})
    write_part(tmp_path, "absent", "ok", {"skip": "transformers is not installed here", "measured": 0})
    write_part(tmp_path, "crashed", "failed", {"measured": 0, "errors": ["bf16: CUDA error"]}, rc=1)
    write_part(tmp_path, "garbled", "ok", "Traceback (most recent call last):\n")
    write_part(tmp_path, "mute", "ok", "")
    write_part(tmp_path, "designed", "skipped", reason="the fine-tune exported the model")
    write_part(tmp_path, "died", "failed", "", rc=1)
    (tmp_path / "died.err").write_text("Traceback (most recent call last):\nRuntimeError: Found no NVIDIA driver\n\n")
    parts = merge.merge(str(tmp_path))["parts"]
    verdict = {name: (part["status"], part.get("reason", "")) for name, part in parts.items()}
    assert verdict["fine"] == ("ok", "")
    assert verdict["empty"] == ("failed", "it measured nothing")
    assert verdict["silent"] == ("failed", "it did not say what it measured")
    assert verdict["half"] == ("partial", "NHWC: shader failed")
    assert verdict["absent"] == ("skipped", "transformers is not installed here")
    assert verdict["crashed"] == ("failed", "it measured nothing: bf16: CUDA error")
    assert verdict["garbled"][0] == verdict["mute"][0] == "failed"
    assert verdict["designed"] == ("skipped", "the fine-tune exported the model")
    assert verdict["died"] == ("failed", "it exited with status 1: RuntimeError: Found no NVIDIA driver")
    assert parts["fine"]["result"] == {"measured": 3}


@pytest.mark.parametrize("bad, code", [(None, 0), ("empty", 1), ("half", 1)])
def test_the_merge_exits_1_unless_every_part_is_ok_or_skipped(tmp_path, bad, code):
    write_part(tmp_path, "fine", "ok", {"measured": 1})
    write_part(tmp_path, "absent", "ok", {"skip": "not here"})
    if bad == "empty":
        write_part(tmp_path, bad, "ok", {"measured": 0})
    elif bad == "half":
        write_part(tmp_path, bad, "ok", {"measured": 1, "errors": ["one layout"]})
    result = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, os.path.join(LIB, "merge.py"), str(tmp_path), str(result)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == code, proc.stderr
    assert json.loads(result.read_text())["summary"]["ok"] == ["fine"]


def nvidia_manifest(folder, library="libGLX_nvidia.so.0"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "nvidia_icd.json"), "w") as f:
        json.dump({"file_format_version": "1.0.0", "ICD": {"library_path": library, "api_version": "1.4.312"}}, f)


def test_the_nvidia_manifest_and_library_are_found_outside_the_loaders_search_path(tmp_path):
    nvidia_manifest(str(tmp_path / "usr/local/nvidia/vulkan/icd.d"))
    (tmp_path / "usr/local/nvidia/lib64").mkdir(parents=True)
    (tmp_path / "usr/local/nvidia/lib64/libGLX_nvidia.so.0").write_bytes(b"")
    manifests = env.icd_manifests(str(tmp_path))
    assert [(os.path.relpath(m["path"], tmp_path), m["nvidia"], m["default_search_path"]) for m in manifests] == [
        ("usr/local/nvidia/vulkan/icd.d/nvidia_icd.json", True, False)]
    libraries = env.driver_libraries(str(tmp_path))
    assert libraries == {"libGLX_nvidia.so.0": {"path": str(tmp_path / "usr/local/nvidia/lib64/libGLX_nvidia.so.0"),
                                                "in_ld_cache": False}}
    # The manifest names the library by its bare name, which the dynamic loader would not find there:
    # a manifest naming the absolute path is written instead, keeping the driver's API version.
    driver = env.choose_driver(manifests, libraries)
    assert driver["written"] and driver["library"] == libraries["libGLX_nvidia.so.0"]["path"]
    assert driver["api_version"] == "1.4.312"


def test_the_driver_choice():
    cached = {"libGLX_nvidia.so.0": {"path": "/usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0", "in_ld_cache": True}}
    lavapipe = {"path": "/usr/share/vulkan/icd.d/lvp_icd.json", "library_path": "libvulkan_lvp.so",
                "api_version": "1.4", "nvidia": False, "default_search_path": True}
    nvidia = {"path": "/etc/vulkan/icd.d/nvidia_icd.json", "library_path": "libGLX_nvidia.so.0",
              "api_version": "1.4", "nvidia": True, "default_search_path": True}
    assert env.choose_driver([lavapipe, nvidia], cached) == {
        "manifest": nvidia["path"], "library": cached["libGLX_nvidia.so.0"]["path"], "written": False}
    written = env.choose_driver([lavapipe], cached)  # the container got the library but not its manifest
    assert written["written"] and written["library"] == cached["libGLX_nvidia.so.0"]["path"]
    assert env.choose_driver([lavapipe], {}) is None  # no NVIDIA driver: nothing to point the loader at
