"""gpu-check helper (not a part): merges the parts' outputs into one JSON document and says whether the
check measured what it was meant to.

    python3 merge.py PARTS_DIR RESULT_JSON      exit 0: every part ok or skipped by design; else 1

Each part left NAME.status ({"status": "ok"|"failed"|"skipped", "seconds", "budget_s", ...} from run.sh)
and NAME.out (its stdout, whose last line is its JSON object); order.txt lists the parts as they ran. A part's JSON says what it measured:
"measured" (how many figures), "errors" (what failed inside it), or "skip" (why it had nothing to do here).
A part that exited 0 but measured nothing, or did not say, has failed; one that measured something while
some of it failed is "partial".
"""
import json
import os
import sys
from typing import Any, Dict

STATUSES = ("ok", "partial", "failed", "skipped")


def judge(entry: Dict[str, Any], lines: list) -> Dict[str, Any]:
    """Combine run.sh's view (exit status, time) with what the part printed."""
    if entry["status"] == "skipped":
        return entry
    result = None
    if lines:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            entry["stdout_tail"] = "\n".join(lines[-5:])[-800:]
    if isinstance(result, dict):
        entry["result"] = result
    if entry["status"] == "failed":
        if isinstance(result, dict) and "reason" not in entry:
            errors = "; ".join(map(str, result.get("errors") or []))
            nothing = "it measured nothing" if not result.get("measured") else ""
            entry["reason"] = ": ".join(filter(None, [nothing, errors]))[:800] or "it exited with an error"
        return entry
    if not lines:
        return {**entry, "status": "failed", "reason": "it printed nothing"}
    if not isinstance(result, dict):
        return {**entry, "status": "failed", "reason": "its last line of output is not a JSON object"}
    if result.get("skip"):
        return {**entry, "status": "skipped", "reason": str(result["skip"])}
    measured = result.get("measured")
    if not isinstance(measured, int) or isinstance(measured, bool):
        return {**entry, "status": "failed", "reason": "it did not say what it measured"}
    if measured <= 0:
        return {**entry, "status": "failed", "reason": "it measured nothing"}
    if result.get("errors"):
        return {**entry, "status": "partial", "reason": "; ".join(map(str, result["errors"]))[:800]}
    return entry


def merge(parts_dir: str) -> Dict[str, Any]:
    result: Dict[str, Any] = {"bench": "gpu-check", "parts": {}}
    names = sorted(f[: -len(".status")] for f in os.listdir(parts_dir) if f.endswith(".status"))
    order_file = os.path.join(parts_dir, "order.txt")
    order = open(order_file).read().split() if os.path.exists(order_file) else []
    for name in sorted(names, key=lambda n: order.index(n) if n in order else len(order)):
        with open(os.path.join(parts_dir, f"{name}.status")) as f:
            entry = json.load(f)
        out = os.path.join(parts_dir, f"{name}.out")
        lines = open(out, errors="replace").read().strip().splitlines() if os.path.exists(out) else []
        entry = judge(entry, lines)
        err = os.path.join(parts_dir, f"{name}.err")
        if entry["status"] in ("failed", "partial") and os.path.exists(err):
            entry["stderr_tail"] = open(err, errors="replace").read()[-1500:]
            if not entry.get("reason"):  # a crash: its last words say most
                last = [line for line in entry["stderr_tail"].splitlines() if line.strip()][-1:]
                entry["reason"] = f"it exited with status {entry.get('rc')}" + (f": {last[0][:300]}" if last else "")
        result["parts"][name] = entry
    result["summary"] = {s: [n for n, e in result["parts"].items() if e["status"] == s] for s in STATUSES}
    return result


def main() -> int:
    parts_dir, result_path = sys.argv[1], sys.argv[2]
    result = merge(parts_dir)
    schedule = os.path.join(parts_dir, "schedule.json")
    if os.path.exists(schedule):
        with open(schedule) as f:
            result["schedule"] = json.load(f)
    with open(result_path, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result["summary"]))
    return 1 if result["summary"]["failed"] or result["summary"]["partial"] else 0


if __name__ == "__main__":
    sys.exit(main())
