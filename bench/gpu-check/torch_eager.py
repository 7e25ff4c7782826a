"""gpu-check part: the trainer's model in PyTorch eager at fp32, TF32 and bf16 (channels_last): encode and
decode images/s per batch size, and token agreement with fp32 (all tokens, and those whose fp32 margin
is clear).

    python3 bench/gpu-check/torch_eager.py --model-dir DIR --device cuda [--budget-s 60]
    python3 bench/gpu-check/torch_eager.py --model-dir DIR --device cpu --quick     # tested in CI

Prints one JSON object on stdout (run.sh merges it into the gpu-check result): "measured" counts the
figures, "errors" names each mode that failed; a figure that would not fit in --budget-s is skipped
and listed. Nothing measured exits 1.
"""
import argparse
import contextlib
import json
import os
import sys
import time
from typing import Dict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "trainer"))
sys.path.insert(0, os.path.join(HERE, ".."))

from fqgan.checkpoint import load_served_model  # noqa: E402
from fqgan.precision import set_tf32  # noqa: E402
from fqgan.codes import token_margins  # noqa: E402
from torch_throughput import generated_images  # noqa: E402

CLEAR_MARGIN = 1e-3  # bf16 rounds scores at ~1e-2 relative; below this a token is called a near-tie


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, batch: int, seconds: float) -> float:
    """Images/s: one warm-up call, then repeats until `seconds` have passed (at least two)."""
    fn()
    sync(device)
    runs, start = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - start < seconds:
        fn()
        runs += 1
    sync(device)
    return round(batch * runs / (time.perf_counter() - start), 3)


def agreement(tokens: Dict[str, torch.Tensor], reference: Dict[str, torch.Tensor], margins: Dict[str, torch.Tensor],
              clear_margin: float) -> Dict[str, float]:
    """Share of tokens equal to the reference's, over all and over those whose fp32 margin is clear."""
    agree = total = agree_clear = total_clear = 0
    for name, want in reference.items():
        same = tokens[name].to(want.device) == want
        clear = margins[name].to(want.device) > clear_margin
        agree += int(same.sum())
        total += same.numel()
        agree_clear += int((same & clear).sum())
        total_clear += int(clear.sum())
    return {"token_agreement_with_fp32": round(agree / total, 6),
            "token_agreement_with_fp32_clear_margin": round(agree_clear / max(total_clear, 1), 6),
            "clear_tokens": total_clear}


def mode_context(mode: str, device: torch.device):
    if mode == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="batches 1 and 2, short timings")
    parser.add_argument("--batches", default=None, help="comma-separated (default 1,8,32; quick 1,2)")
    parser.add_argument("--seconds", type=float, default=None, help="timing per figure (default 1.5; quick 0)")
    parser.add_argument("--budget-s", type=float, default=120.0, help="seconds to measure in; the JSON comes before")
    args = parser.parse_args()
    started = time.perf_counter()
    device = torch.device(args.device)
    batches = [int(b) for b in (args.batches or ("1,2" if args.quick else "1,8,32")).split(",")]
    seconds = args.seconds if args.seconds is not None else (0.0 if args.quick else 1.5)
    modes = ["fp32", "tf32", "bf16"] if device.type == "cuda" else ["fp32"]

    model = load_served_model(args.model_dir).to(device).eval()
    size = model.config.image_size
    images = generated_images(max(batches), size).to(device)
    margins = token_margins(model, images)  # exact fp32 (TF32 and autocast off), as every agreement check

    result = {"part": "torch_eager", "device": args.device, "torch": torch.__version__,
              "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "image_size": size, "batches": batches, "seconds_per_figure": seconds,
              "clear_margin": CLEAR_MARGIN, "modes": {}}
    if device.type != "cuda":
        result["skipped"] = {"tf32": "TF32 exists on NVIDIA GPUs only",
                             "bf16": "bf16 autocast is a CUDA mode here (the trainer refuses it on a CPU)"}
    state = {}
    skipped, errors = [], []
    longest = [0.0]  # the slowest batch so far: the next is skipped unless that much time is left

    def time_left() -> bool:
        return time.perf_counter() - started + longest[0] <= args.budget_s

    def measure_mode(mode: str) -> dict:
        set_tf32(mode == "tf32")
        fmt = torch.channels_last if mode == "bf16" else torch.contiguous_format
        net = model.to(memory_format=fmt)
        entry = {"encode_images_per_s": {}, "decode_images_per_s": {}}
        with mode_context(mode, device):
            for batch in batches:
                if not time_left():
                    skipped.append(f"{mode} batch {batch} (time budget)")
                    continue
                batch_started = time.perf_counter()
                x = images[:batch].contiguous(memory_format=fmt)
                entry["encode_images_per_s"][str(batch)] = timed(lambda: net.encode(x), device, batch, seconds)
                codes = net.encode(x).indices
                entry["decode_images_per_s"][str(batch)] = timed(lambda: net.decode_code(codes), device, batch, seconds)
                longest[0] = max(longest[0], time.perf_counter() - batch_started)
            tokens = net.encode(images.contiguous(memory_format=fmt)).indices
            decoded = net.decode_code(state.get("tokens", tokens)).float()
        if mode == "fp32":
            state.update(tokens=tokens, decoded=decoded)
            return entry
        entry.update(agreement(tokens, state["tokens"], margins, CLEAR_MARGIN))
        entry["decode_max_abs_vs_fp32"] = round(float((decoded - state["decoded"]).abs().max()), 6)
        return entry

    for mode in modes:
        if mode != "fp32" and "tokens" not in state:
            skipped.append(f"{mode} (no fp32 reference to compare with)")
            continue
        try:
            result["modes"][mode] = measure_mode(mode)
        except Exception as error:  # one mode failing is recorded, and the others go on
            result["modes"][mode] = {"error": f"{type(error).__name__}: {error}"[:500]}
            errors.append(f"{mode}: {result['modes'][mode]['error']}")
    set_tf32(False)
    result["skipped_figures"], result["errors"] = skipped, errors
    result["measured"] = sum(len(m.get("encode_images_per_s", {})) + len(m.get("decode_images_per_s", {}))
                             for m in result["modes"].values())
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    sys.exit(0 if result["measured"] else 1)


if __name__ == "__main__":
    main()
