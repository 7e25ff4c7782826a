"""gpu-check part `env`: what this machine is (GPU, driver, torch, node), and the NVIDIA Vulkan driver the
WebGPU part needs, made findable.

    python3 env.py --node NODE --fallback-libs CARRIED_LIB_DIR --link-dir DIR --env-out FILE

The driver's Vulkan manifest (ICD) may sit outside the loader's default search path, or be missing while
the driver library is there, and the library may need X/GL libraries the machine lacks. This part finds
the manifest (or writes one for the library it finds), links the carried copies of only the libraries the
driver lacks into --link-dir, and writes the shell lines that point the loader at it (VK_DRIVER_FILES,
VK_ICD_FILENAMES, LD_LIBRARY_PATH) to --env-out for run.sh. A VK_DRIVER_FILES already set is kept.
Prints one JSON object.
"""
import argparse
import glob
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from typing import Dict, List, Optional

# Where a Vulkan driver manifest may be: the loader's defaults, then driver roots that containers and
# the GPU operator use (not searched by the loader).
ICD_DIRS = ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d",
            "/usr/local/etc/vulkan/icd.d", "/usr/local/nvidia/vulkan/icd.d", "/usr/local/nvidia/etc/vulkan/icd.d",
            "/usr/local/nvidia/share/vulkan/icd.d", "/run/nvidia/driver/etc/vulkan/icd.d",
            "/run/nvidia/driver/usr/share/vulkan/icd.d", "/usr/lib/x86_64-linux-gnu/nvidia/current")
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/nvidia/lib64",
            "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu/nvidia/current", "/run/nvidia/driver/usr/lib64",
            "/run/nvidia/driver/usr/lib/x86_64-linux-gnu")
DRIVER_LIBS = ("libGLX_nvidia.so.0", "libEGL_nvidia.so.0")  # both carry the Vulkan ICD entry points


def sh(*cmd: str, env: Optional[Dict[str, str]] = None) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=8, env=env).stdout.strip()
    except Exception as error:
        return f"unavailable: {error}"


def icd_manifests(root: str = "/") -> List[dict]:
    """Every Vulkan driver manifest under the known folders: {path, library_path, api_version, nvidia}."""
    found = []
    for folder in ICD_DIRS:
        for path in sorted(glob.glob(os.path.join(root, folder.lstrip("/"), "*.json"))):
            try:
                with open(path) as f:
                    icd = json.load(f).get("ICD") or {}
            except (OSError, ValueError, AttributeError):
                continue
            library = str(icd.get("library_path", ""))
            found.append({"path": path, "library_path": library, "api_version": icd.get("api_version"),
                          "nvidia": "nvidia" in library.lower(), "default_search_path": folder in ICD_DIRS[:4]})
    return found


def driver_libraries(root: str = "/") -> Dict[str, dict]:
    """{name: {path, in_ld_cache}} of the NVIDIA libraries that implement Vulkan, wherever they are."""
    found = {}
    cache = sh("ldconfig", "-p") if root == "/" else ""
    for name in DRIVER_LIBS:
        match = re.search(rf"^\s*{re.escape(name)} \(.*x86-64.*\) => (\S+)$", cache, re.M)
        if match and os.path.exists(match.group(1)):
            found[name] = {"path": match.group(1), "in_ld_cache": True}
            continue
        for folder in LIB_DIRS:
            path = os.path.join(root, folder.lstrip("/"), name)
            if os.path.exists(path):
                found[name] = {"path": path, "in_ld_cache": False}
                break
    return found


def choose_driver(manifests: List[dict], libraries: Dict[str, dict]) -> Optional[dict]:
    """The NVIDIA manifest to use; or one to write, naming the library by its absolute path, for a driver
    library found without a manifest or outside what the dynamic loader finds by a bare name."""
    for manifest in manifests:
        if not manifest["nvidia"]:
            continue
        library = manifest["library_path"]
        name = os.path.basename(library)
        if os.path.isabs(library) or name not in libraries or libraries[name]["in_ld_cache"]:
            path = library if os.path.isabs(library) else libraries.get(name, {}).get("path", library)
            return {"manifest": manifest["path"], "library": path, "written": False}
        return {"library": libraries[name]["path"], "written": True, "api_version": manifest["api_version"],
                "reason": f"{manifest['path']} names {name}, which is only at {libraries[name]['path']}"}
    for name in DRIVER_LIBS:
        if name in libraries:
            return {"library": libraries[name]["path"], "written": True, "api_version": None,
                    "reason": "no NVIDIA Vulkan manifest found, but the driver library is there"}
    return None


def missing_libraries(library: str, link_dir: str) -> List[str]:
    env = {**os.environ, "LD_LIBRARY_PATH": ":".join(filter(None, [os.environ.get("LD_LIBRARY_PATH"), link_dir]))}
    return sorted(set(re.findall(r"^\s*(\S+) => not found", sh("ldd", library, env=env), re.M)))


def fill_missing(library: str, fallback: str, link_dir: str) -> dict:
    """Link carried copies of what `library` lacks (and what those lack) into link_dir; report both."""
    before = missing_libraries(library, link_dir)
    linked = []
    for _ in range(4):  # a linked library may itself need another
        missing = missing_libraries(library, link_dir)
        usable = [name for name in missing if os.path.exists(os.path.join(fallback, name))]
        if not usable:
            break
        for name in usable:
            os.symlink(os.path.join(fallback, name), os.path.join(link_dir, name))
            linked.append(name)
    return {"missing": before, "linked_from_carry": linked, "still_missing": missing_libraries(library, link_dir)}


def torch_info() -> object:
    try:
        import torch
        cuda = torch.cuda.is_available()
        return {"version": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda,
                "cudnn": torch.backends.cudnn.version() if cuda else None,
                "bf16": torch.cuda.is_bf16_supported() if cuda else None,
                "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
    except Exception as error:
        return f"unavailable: {error}"


def package_version(name: str) -> Optional[str]:
    try:
        module = __import__(name)
    except Exception:
        return None
    return getattr(module, "__version__", "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", default="")
    parser.add_argument("--fallback-libs", default="")
    parser.add_argument("--link-dir", required=True)
    parser.add_argument("--env-out", required=True)
    args = parser.parse_args()
    os.makedirs(args.link_dir, exist_ok=True)

    manifests = icd_manifests()
    libraries = driver_libraries()
    preset = os.environ.get("VK_DRIVER_FILES") or os.environ.get("VK_ICD_FILENAMES")
    driver = None if preset else choose_driver(manifests, libraries)
    lines = []
    if driver:
        if driver["written"]:
            driver["manifest"] = os.path.join(args.link_dir, "nvidia_icd.json")
            with open(driver["manifest"], "w") as f:
                json.dump({"file_format_version": "1.0.0",
                           "ICD": {"library_path": driver["library"],
                                   "api_version": driver.get("api_version") or "1.3.0"}}, f)
        lines += [f"export VK_DRIVER_FILES={shlex.quote(driver['manifest'])}",
                  f"export VK_ICD_FILENAMES={shlex.quote(driver['manifest'])}"]  # loaders before 1.3.207
        if os.path.exists(driver["library"]):
            driver.update(fill_missing(driver["library"], args.fallback_libs, args.link_dir))
    lines.append(f"export LD_LIBRARY_PATH=\"${{LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}}\"{shlex.quote(args.link_dir)}")
    with open(args.env_out, "w") as f:
        f.write("\n".join(lines) + "\n")

    print(json.dumps({
        "part": "env", "python": platform.python_version(), "torch": torch_info(),
        "transformers": package_version("transformers"),
        "nvidia_smi": sh("nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                         "--format=csv,noheader"),
        "node": sh(args.node, "--version") if args.node else None, "nproc": os.cpu_count(),
        "vulkan": {"preset": preset, "manifests": manifests, "nvidia_libraries": libraries, "driver": driver,
                   "driver_parts": sorted(p for d in LIB_DIRS for n in ("libnvidia-glcore.so*", "libnvidia-glvkspirv.so*")
                                          for p in glob.glob(os.path.join(d, n)))},
        "measured": 1,
    }))


if __name__ == "__main__":
    sys.exit(main())
