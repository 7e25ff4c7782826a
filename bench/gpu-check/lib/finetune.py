"""gpu-check part: a short fine-tune through the trainer's own CLI, launched by torchrun, ending with
its evaluation and its ONNX export (the paths a fine-tuning job runs, on the training device).

    python3 bench/gpu-check/lib/finetune.py --device cuda --steps 3 [--job-dir DIR] [--budget-s 140]
    python3 bench/gpu-check/lib/finetune.py --device cpu --quick           # CI: tiny preset

torchrun is `python -m torch.distributed.run` of this interpreter (a `torchrun` on PATH may belong to
another Python). Prints one JSON object: the launcher used, wall time, the trainer's events by kind, its
figures (images/s, evaluation, export), its last error if any; "measured" is 1 once the run finished
and exported. With --job-dir the job folder (checkpoint and exported model) is kept there.
With --quick, a torchrun that fails (Debian's torch 1.13 torchrun crashes on Python 3.11) is recorded
and the trainer is run again without it, so the spec, the loop and the export are still tested.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

import numpy as np
from PIL import Image

TRAINER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "trainer")
IMAGES = 12  # a batch of 8 plus 2 held out for the evaluation, with room


def spec(root: str, job: str, args: argparse.Namespace) -> str:
    example = json.loads(subprocess.run([sys.executable, "-m", "fqgan.train", "--example-spec"], cwd=TRAINER,
                                        check=True, capture_output=True, text=True).stdout)
    size = 32 if args.quick else 256
    data = os.path.join(root, "images")
    os.makedirs(data)
    rng = np.random.default_rng(0)
    for i in range(IMAGES):
        Image.fromarray(rng.integers(0, 255, (size + 8, size + 16, 3), dtype=np.uint8)).save(os.path.join(data, f"{i}.png"))
    example.update(dataset=data, output_dir=job, weights={})
    example["model"] = {"preset": "test-8" if args.quick else "VQ-16", "variant": "triple",
                        "overrides": {"image_size": size} if args.quick else {}}
    example["hyperparameters"].update(steps=args.steps, batch_size=2 if args.quick else 8, perceptual_weight=0.0,
                                      semantic_weight=0.0, eval_images=2, eval_every=0, checkpoint_every=0, log_every=1)
    example["device"] = {"device": args.device, "precision": "fp32" if args.device == "cpu" else "bf16", "num_workers": 0}
    path = os.path.join(root, "spec.json")
    with open(path, "w") as f:
        json.dump(example, f)
    return path


def launch(command, timeout: float) -> dict:
    """Run the trainer in its own session; past `timeout` the whole session (torchrun and its workers) ends."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=TRAINER, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def end_session(*_):  # run.sh's timeout signals our process group, which the session left: pass it on
        os.killpg(proc.pid, signal.SIGKILL)
        sys.exit(143)

    previous = signal.signal(signal.SIGTERM, end_session)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    finally:
        signal.signal(signal.SIGTERM, previous)
    events = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    last = {}
    for event in events:
        last[event.get("event", "?")] = event
    progress = last.get("progress", {})
    return {"command": " ".join(command[:4]) + " ...", "rc": proc.returncode, "timed_out": timed_out,
            "seconds": round(time.perf_counter() - started, 2),
            "events": dict(Counter(e.get("event", "?") for e in events)),
            "images_per_s": progress.get("images_per_s"), "losses": progress.get("losses"),
            "eval": {k: last["eval"].get(k) for k in ("psnr", "ssim", "images")} if "eval" in last else None,
            "exported": last.get("exported", {}).get("path"), "error": last.get("error"),
            "finished": "finished" in last and "exported" in last,
            "stderr_tail": stderr[-800:] if proc.returncode else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--job-dir", help="keep the job folder (checkpoint, exported model) here")
    parser.add_argument("--budget-s", type=float, default=150, help="seconds for everything; the JSON comes before")
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget_s
    root = tempfile.mkdtemp(prefix="fqtok-gpu-check-")
    job = os.path.abspath(args.job_dir) if args.job_dir else os.path.join(root, "job")
    try:
        path = spec(root, job, args)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "-m", "fqgan.train"]
        result = {"part": "finetune", "device": args.device, "steps": args.steps,
                  "torchrun": launch(torchrun + ["--spec", path], deadline - time.monotonic())}
        run = result["torchrun"]
        if not run["finished"] and args.quick:
            shutil.rmtree(job, ignore_errors=True)
            result["plain"] = run = launch([sys.executable, "-m", "fqgan.train", "--spec", path],
                                           deadline - time.monotonic())
        result["ok"] = run["rc"] == 0 and run["finished"]
        result["model_dir"] = run["exported"] if result["ok"] and args.job_dir else None
        result["measured"] = 1 if result["ok"] else 0
        if result["ok"]:
            result["errors"] = []
        elif run["timed_out"]:
            result["errors"] = [f"the trainer was still running after {run['seconds']} s (events: {run['events']})"]
        else:
            result["errors"] = [f"the trainer failed: {(run['error'] or {}).get('message') or run['stderr_tail']}"]
        print(json.dumps(result))
        sys.exit(0 if result["ok"] else 1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
