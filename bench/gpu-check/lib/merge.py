"""gpu-check helper (not a part): merges the parts' outputs into one JSON document.

    python3 merge.py PARTS_DIR RESULT_JSON
Each part left NAME.status ({"status": "ok"|"failed"|"skipped", ...}) and NAME.out (its stdout, whose last
line is its JSON object when it succeeded).
"""
import json
import os
import sys


def main() -> None:
    parts_dir, result_path = sys.argv[1], sys.argv[2]
    result = {"bench": "gpu-check", "parts": {}}
    for name in sorted(f[:-len(".status")] for f in os.listdir(parts_dir) if f.endswith(".status")):
        with open(os.path.join(parts_dir, f"{name}.status")) as f:
            entry = json.load(f)
        out = os.path.join(parts_dir, f"{name}.out")
        lines = open(out).read().strip().splitlines() if os.path.exists(out) else []
        if lines:
            try:
                entry["result"] = json.loads(lines[-1])
            except ValueError:
                if entry["status"] == "ok":
                    entry.update(status="failed", reason="its last line of output is not JSON")
                entry["stdout_tail"] = "\n".join(lines[-5:])[-800:]
        elif entry["status"] == "ok":
            entry.update(status="failed", reason="it printed nothing")
        err = os.path.join(parts_dir, f"{name}.err")
        if entry["status"] == "failed" and os.path.exists(err):
            entry["stderr_tail"] = open(err, errors="replace").read()[-1500:]
        result["parts"][name] = entry
    result["summary"] = {s: sorted(n for n, e in result["parts"].items() if e["status"] == s) for s in ("ok", "failed", "skipped")}
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
