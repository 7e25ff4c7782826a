"""gpu-check part `export`: a seeded random-init model exported by the trainer's CLI, for the parts that need
a model when the fine-tune left none. Passes its arguments to `python -m fqgan.export` and prints its
summary with "measured" (1 once the model directory is written).

    python3 export_part.py --random --preset VQ-16 --variant triple --seed 0 --out DIR
"""
import json
import os
import subprocess
import sys

TRAINER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "trainer")


def main() -> int:
    proc = subprocess.run([sys.executable, "-m", "fqgan.export", *sys.argv[1:]], cwd=TRAINER, stdout=subprocess.PIPE,
                          text=True)
    lines = proc.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1])
    except (IndexError, ValueError):
        summary = {"ok": False, "error": "fqgan.export printed no summary"}
    summary["measured"] = 1 if proc.returncode == 0 and summary.get("ok") else 0
    if not summary["measured"]:
        summary["errors"] = [str(summary.get("error") or f"fqgan.export exited {proc.returncode}")]
    print(json.dumps(summary))
    return 0 if summary["measured"] else 1


if __name__ == "__main__":
    sys.exit(main())
