"""GPU check of the torch backend: encode/decode images/s of the default-size Triple VQ-16 at batch
32/64/128 in fp32, tf32 and bf16 through fqgan.inference (the code the service's worker runs),
token agreement of each with fp32, peak GPU memory, and a reference-style eager bf16 loop
(autocast, no channels_last, no graphs) as the baseline, all in one run. Prints one JSON object.

    python bench/gpu-check/torch_backend.py [--budget-s 180]       # CUDA, VQ-16, within the budget
    python bench/gpu-check/torch_backend.py --device cpu --quick   # tiny preset, small batches, fp32 only (CI)

Rows are measured batch by batch; one that would not fit in --budget-s is listed under "skipped" and the
JSON is printed in time. "measured" counts the rows; none measured exits 1.

Random init (seeded): throughput does not depend on the weights; agreement on random weights is a
pessimistic proxy (trained encoders give wider margins).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "trainer"))

from fqgan.config import preset  # noqa: E402
from fqgan.inference import InferenceModel, InferenceSettings, compile_available, to_rgb8  # noqa: E402
from fqgan.model import FQGAN  # noqa: E402
from fqgan.precision import set_tf32  # noqa: E402


def images(count: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Smooth, varied pictures in [-1,1] (waves at random frequencies and phases, plus a little noise)."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.linspace(-1.0, 1.0, size)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    freq = 1 + 5 * torch.rand(count, 3, 2, generator=g)
    phase = 2 * math.pi * torch.rand(count, 3, generator=g)
    waves = torch.sin(freq[..., 0, None, None] * 3 * x + freq[..., 1, None, None] * 3 * y + phase[..., None, None])
    noise = torch.rand(count, 3, size, size, generator=g) * 2 - 1
    return (0.85 * waves + 0.15 * noise).clamp(-1, 1).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def images_per_second(fn: Callable[[], Any], batch: int, device: torch.device, min_seconds: float, min_runs: int) -> float:
    fn()  # warm-up (cuDNN autotuning with benchmark on)
    sync(device)
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < min_seconds:
        fn()
        runs += 1
    sync(device)
    return batch * runs / (time.perf_counter() - start)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: torch.device) -> Optional[float]:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda" else None


def agreement(tokens: Dict[str, torch.Tensor], reference: Dict[str, torch.Tensor]) -> float:
    same = sum(int((tokens[n] == reference[n]).sum()) for n in reference)
    total = sum(reference[n].numel() for n in reference)
    return same / total


class ReferenceLoop:
    """How the reference extractor runs: the model's own encode/decode_code, eager, under autocast."""

    def __init__(self, model: FQGAN, device: torch.device, precision: str) -> None:
        self.model, self.device, self.precision = model, device, precision

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.type, enabled=False)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        with self._autocast():
            return {n: i.cpu() for n, i in self.model.encode(x).indices.items()}

    @torch.no_grad()
    def decode(self, grids: Dict[str, torch.Tensor]) -> torch.Tensor:
        with self._autocast():
            return to_rgb8(self.model.decode_code({n: g.to(self.device).long() for n, g in grids.items()})).cpu()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="given by run.sh; unused: this part builds the same preset itself (seed 0)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny preset, batches 1 and 2, short timings")
    parser.add_argument("--preset", help="default VQ-16 (tiny-16 with --quick)")
    parser.add_argument("--batches", help="comma-separated (default 32,64,128; 1,2 with --quick)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile variants (torch >= 2)")
    parser.add_argument("--budget-s", type=float, default=180.0, help="seconds to measure in; the JSON comes before")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device)
    preset_name = args.preset or ("tiny-16" if args.quick else "VQ-16")
    batches = [int(b) for b in (args.batches or ("1,2" if args.quick else "32,64,128")).split(",")]
    min_seconds, min_runs = (0.2, 1) if args.quick else (1.0, 3)

    torch.manual_seed(0)
    config = preset(preset_name, "triple")
    model = FQGAN(config).eval().to(device)
    cuda = device.type == "cuda"
    # TF32 and bf16 are CUDA features (on a CPU "tf32" is plain fp32; CPU autocast is incomplete on 1.13).
    modes = ["fp32", "tf32", "bf16"] if cuda else ["fp32"]
    compiled = args.compile and compile_available()
    out: Dict[str, Any] = {
        "bench": "gpu-check/torch_backend", "device": str(device), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device) if cuda else None, "preset": preset_name, "variant": "triple",
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1), "batches": batches,
        "skipped": [] if cuda else ["tf32 (needs CUDA)", "bf16 (needs CUDA)"], "results": [], "baseline": [],
    }
    if args.compile and not compiled:
        out["skipped"].append(f"compile (torch {torch.__version__} has no torch.compile)")

    longest = [0.0]  # the slowest row so far: the next one is skipped unless that much time is left

    def over_budget() -> bool:
        return time.perf_counter() - started + longest[0] > args.budget_s

    for batch in batches:
        x = images(batch, config.image_size, device, seed=batch)
        reference_tokens: Optional[Dict[str, torch.Tensor]] = None
        reference_rgb: Optional[torch.Tensor] = None
        variants = [(m, False) for m in modes] + ([(m, True) for m in modes] if compiled else [])
        for precision, compile_it in variants:
            if over_budget():
                out["skipped"].append(f"{precision} batch {batch} (time budget)")
                continue
            row_started = time.perf_counter()
            reset_peak(device)
            runner = InferenceModel(model, InferenceSettings(device=str(device), precision=precision, compile=compile_it))
            tokens = runner.encode(x)
            rgb = runner.decode(tokens)
            if reference_tokens is None:
                reference_tokens, reference_rgb = tokens, rgb
            row = {
                "precision": precision, "batch": batch, "channels_last": runner.channels_last, "compiled": compile_it,
                "encode_images_per_s": round(images_per_second(lambda: runner.encode(x), batch, device, min_seconds, min_runs), 1),
                "decode_images_per_s": round(images_per_second(lambda: runner.decode(tokens), batch, device, min_seconds, min_runs), 1),
                "token_agreement_with_fp32": round(agreement(tokens, reference_tokens), 5),
                "decode_max_level_diff_vs_fp32": int((runner.decode(reference_tokens).int() - reference_rgb.int()).abs().max()),
                "peak_memory_mb": peak_mb(device),
            }
            out["results"].append(row)
            longest[0] = max(longest[0], time.perf_counter() - row_started)
        if over_budget() or reference_tokens is None:
            out["skipped"].append(f"baseline batch {batch} (time budget)")
            continue
        # The eager reference loop on the same model object: undo the serving layout first.
        model.to(memory_format=torch.contiguous_format)
        set_tf32(False)
        torch.backends.cudnn.benchmark = False
        baseline_precision = "bf16" if cuda else "fp32"
        loop = ReferenceLoop(model, device, baseline_precision)
        reset_peak(device)
        base_tokens = loop.encode(x)
        row = {
            "precision": baseline_precision, "batch": batch, "style": "reference eager loop (autocast, NCHW, no graphs)",
            "encode_images_per_s": round(images_per_second(lambda: loop.encode(x), batch, device, min_seconds, min_runs), 1),
            "decode_images_per_s": round(images_per_second(lambda: loop.decode(reference_tokens), batch, device, min_seconds, min_runs), 1),
            "token_agreement_with_fp32": round(agreement(base_tokens, reference_tokens), 5),
            "decode_max_level_diff_vs_fp32": int((loop.decode(reference_tokens).int() - reference_rgb.int()).abs().max()),
            "peak_memory_mb": peak_mb(device),
        }
        out["baseline"].append(row)

    baseline = {(r["batch"]): r for r in out["baseline"]}
    for r in out["results"]:
        b = baseline.get(r["batch"])
        if b:
            r["encode_speedup_vs_baseline"] = round(r["encode_images_per_s"] / b["encode_images_per_s"], 2)
            r["decode_speedup_vs_baseline"] = round(r["decode_images_per_s"] / b["decode_images_per_s"], 2)
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["measured"] = len(out["results"]) + len(out["baseline"])
    print(json.dumps(out))
    return 0 if out["measured"] else 1


if __name__ == "__main__":
    sys.exit(main())
