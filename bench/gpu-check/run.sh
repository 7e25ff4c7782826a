#!/usr/bin/env bash
# The prepared GPU check: one run on a GPU machine (H100/H200, CUDA driver, python3 with torch+cu, no Node,
# no network) writes one JSON file, $OUT/gpu-check.json, in under 8 minutes. Parts:
#   env            GPU, driver, Vulkan ICDs found, torch, the node that runs the ORT part
#   export         the default-size Triple VQ-16, random init, exported by the trainer (quick: tiny-16)
#   ort_webgpu     onnxruntime-node WebGPU EP: images/s at batch 1/8/32, NCHW vs NHWC, agreement with the CPU EP
#   <name>         every bench/gpu-check/<name>.py, run as `python3 <name>.py --model-dir M --device D [--quick]`,
#                  printing one JSON object (torch_eager.py: PyTorch eager fp32/TF32/bf16)
#   train_bf16     bench/train_throughput.py --device cuda --dtype bf16 --preset VQ-16 --batch 16
#   finetune       a 3-step fine-tune launched with torchrun --nproc_per_node=1
# Each part has a time budget; a part that fails or runs out of time is recorded as failed, and the rest go on.
#
#   bash bench/gpu-check/pack.sh                    # here: node + onnxruntime-node + Vulkan loader -> carry/
#   bash bench/gpu-check/run.sh                     # there (carry bench/gpu-check/carry)
#   bash bench/gpu-check/run.sh --device cpu --quick   # here and in CI (test/gpu-check.test.ts)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

device=cuda quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$ROOT/bench/gpu-check/out}
mkdir -p "$OUT"
PY=${FQ_PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
parts=$work/parts
mkdir -p "$parts"
deadline=$(( $(date +%s) + ${GPU_CHECK_TOTAL_S:-450} ))   # 7.5 min, leaving time to merge and copy

status() { # name status [extra json fields]
  printf '{"status": "%s"%s}\n' "$2" "${3:+, $3}" > "$parts/$1.status"
}

# run_part NAME BUDGET_S COMMAND...: stdout -> NAME.out, stderr -> NAME.err, NAME.status says how it went.
run_part() {
  local name=$1 budget=$2; shift 2
  local left=$(( deadline - $(date +%s) ))
  [ "$budget" -gt "$left" ] && budget=$left
  if [ "$budget" -le 5 ]; then status "$name" skipped '"reason": "no time left in the 8-minute budget"'; return 1; fi
  local start rc
  start=$(date +%s.%N)
  timeout -k 10 "$budget" "$@" > "$parts/$name.out" 2> "$parts/$name.err"
  rc=$?
  local seconds
  seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
  if [ $rc -eq 0 ]; then status "$name" ok "\"seconds\": $seconds"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status "$name" failed "\"seconds\": $seconds, \"rc\": $rc, \"reason\": \"ran past its budget of $budget s\""
  else status "$name" failed "\"seconds\": $seconds, \"rc\": $rc"
  fi
  return $rc
}

# --- the node that runs the ORT part: the carried one (xz), else this machine's
node_bin="" ort_modules="$ROOT/node_modules"
carry=$ROOT/bench/gpu-check/carry
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$work/xdg}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
if [ -f "$carry/node.xz" ] && [ -f "$carry/runtime.tar.xz" ]; then
  mkdir -p "$work/rt"
  xz -dc "$carry/node.xz" > "$work/rt/node" && chmod +x "$work/rt/node"
  xz -dc "$carry/runtime.tar.xz" | tar -C "$work/rt" -xf -
  node_bin=$work/rt/node ort_modules=$work/rt/node_modules
  export LD_LIBRARY_PATH="$work/rt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
elif command -v node >/dev/null; then
  node_bin=$(command -v node)
fi

# --- env: what this machine is
run_part env 60 "$PY" - "$node_bin" <<'PYEOF'
import glob, json, os, platform, subprocess, sys
def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as error:
        return f"unavailable: {error}"
icds = {}
for pattern in ("/usr/share/vulkan/icd.d/*.json", "/etc/vulkan/icd.d/*.json", "/usr/share/glvnd/egl_vendor.d/*nvidia*.json"):
    for path in glob.glob(pattern):
        try:
            icds[path] = json.load(open(path))
        except Exception as error:
            icds[path] = f"unreadable: {error}"
try:
    import torch
    t = {"version": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
         "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}
except Exception as error:
    t = f"unavailable: {error}"
node = sys.argv[1]
print(json.dumps({"python": platform.python_version(), "torch": t, "vulkan_icds": icds,
                  "nvidia_smi": sh("nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"),
                  "node": sh(node, "--version") if node else None,
                  "libnvidia_glcore": sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libnvidia-glcore.so*") + glob.glob("/usr/lib64/libnvidia-glcore.so*")),
                  "nproc": os.cpu_count()}))
PYEOF

# --- the model
model=$work/model
preset=VQ-16; [ $quick -eq 1 ] && preset=tiny-16
if ! run_part export 200 bash -c "cd trainer && '$PY' -m fqgan.export --random --preset $preset --variant triple --seed 0 --out '$model' >&2 && echo '{\"preset\": \"$preset\"}'"; then
  model=""
fi

# --- the parts
if [ -z "$model" ]; then status ort_webgpu skipped '"reason": "no exported model"'
elif [ -z "$node_bin" ]; then status ort_webgpu skipped '"reason": "no node: run bench/gpu-check/pack.sh and carry bench/gpu-check/carry"'
elif [ $quick -eq 1 ]; then
  ORT_NODE_MODULES=$ort_modules run_part ort_webgpu 240 "$node_bin" bench/gpu-check/ort_webgpu.mjs --model-dir "$model" --batches 1 --seconds 0 --check-images 1
else
  ORT_NODE_MODULES=$ort_modules run_part ort_webgpu 150 "$node_bin" bench/gpu-check/ort_webgpu.mjs --model-dir "$model" --batches 1,8,32 --seconds 3 --check-images 8
fi

for part in bench/gpu-check/*.py; do
  [ -e "$part" ] || continue
  name=$(basename "$part" .py)
  if [ -z "$model" ]; then status "$name" skipped '"reason": "no exported model"'; continue; fi
  budget=90; [ "$name" = torch_backend ] && budget=200  # three precisions x three batches x encode/decode
  run_part "$name" $budget "$PY" "$part" --model-dir "$model" --device "$device" $([ $quick -eq 1 ] && echo --quick)
done

if [ "$device" = cuda ]; then
  run_part train_bf16 90 "$PY" bench/train_throughput.py --device cuda --dtype bf16 --preset VQ-16 --batch 16 --steps 10 --warmup 3
else
  status train_bf16 skipped '"reason": "bf16 training throughput is a GPU figure"'
  run_part train_cpu 120 "$PY" bench/train_throughput.py --steps 2 --warmup 1
fi
run_part finetune 150 "$PY" bench/gpu-check/lib/finetune.py --device "$device" --steps 3 $([ $quick -eq 1 ] && echo --quick)

"$PY" bench/gpu-check/lib/merge.py "$parts" "$OUT/gpu-check.json"
echo "wrote $OUT/gpu-check.json"
