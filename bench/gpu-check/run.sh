#!/usr/bin/env bash
# The prepared GPU check: one run on a GPU machine (H100/H200, CUDA driver, python3 with torch+cu, no Node,
# no network) writes one JSON file, $OUT/gpu-check.json, within one 10-minute command (515 s of parts,
# then the merge). Parts, in the order they run: the paths that have never run first.
#
#   part            GPU  quick  what
#   env              20    30   GPU, driver, torch, node; finds the NVIDIA Vulkan driver and what it lacks (lib/env.py)
#   finetune        140   150   3 bf16 steps by torchrun of the trainer CLI, its evaluation and its ONNX export
#                               from the GPU-trained model (lib/finetune.py); that model serves the parts below
#   export           45    60   only when the fine-tune left no model: random VQ-16 (quick: tiny-16) exported
#   train_throughput 60    90   bench/train_throughput.py: VQ-16 bf16 batch 16, full objective (quick: CPU tiny)
#   torch_backend   100    90   the torch backend's inference code: batch 32/64/128 x fp32/tf32/bf16 (torch_backend.py)
#   ort_webgpu       90   300   onnxruntime-node's WebGPU EP over Vulkan: batch 1/8/32 x NCHW/NHWC, agreement with CPU
#   teachers         15    30   transformers vs plain-torch teacher loaders, where transformers is installed
#   torch_eager      45    60   the trainer's model in eager fp32/tf32/bf16, agreement with fp32 (torch_eager.py)
#
# A part may run until the sum of its planned seconds and those of every part before it, so time a part
# leaves unused goes to the later ones and none can take a later part's time. Each is told its seconds
# (--budget-s: the slot less 15 s to print its JSON) and killed 5 s past its slot. The clock starts
# before the carried node is unpacked, so the schedule covers the whole command. A part that measured
# nothing, or did not say what it measured, has failed; the exit status is 0 only when every part is ok
# or skipped by design. NVIDIA_TF32_OVERRIDE is deliberately not set: the torch parts measure TF32 on
# and off, and the ORT part runs on Vulkan, which TF32 does not touch.
#
#   bash bench/gpu-check/pack.sh                         # here: node + onnxruntime-node + Vulkan loader -> carry/
#   bash bench/gpu-check/run.sh                          # there (carry bench/gpu-check/carry)
#   bash bench/gpu-check/run.sh --device cpu --quick     # here and in CI (test/gpu-check.test.ts)
#   ... --parts ort_webgpu,torch_eager                   # only these (env always; export when they need a model)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

device=cuda quick=0 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --parts) only=",$2,"; shift 2 ;;
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
quick_flag=(); [ $quick -eq 1 ] && quick_flag=(--quick)
GRACE_S=15

# name, planned seconds on a GPU, in quick mode
SCHEDULE="env 20 30
finetune 140 150
export 45 60
train_throughput 60 90
torch_backend 100 90
ort_webgpu 90 300
teachers 15 30
torch_eager 45 60"
declare -A slot_end
started=$(date +%s) cumulative=0 schedule_json=""
while read -r name gpu_s quick_s; do
  planned=$gpu_s; [ $quick -eq 1 ] && planned=$quick_s
  cumulative=$(( cumulative + planned ))
  slot_end[$name]=$(( started + cumulative ))
  schedule_json+="${schedule_json:+, }{\"part\": \"$name\", \"planned_s\": $planned, \"ends_at_s\": $cumulative, \"gpu_s\": $gpu_s, \"quick_s\": $quick_s}"
done <<< "$SCHEDULE"
total=${GPU_CHECK_TOTAL_S:-$cumulative}
printf '{"device": "%s", "quick": %s, "total_s": %s, "grace_s": %s, "parts": [%s]}\n' \
  "$device" "$quick" "$total" "$GRACE_S" "$schedule_json" > "$parts/schedule.json"

status() { # name status [extra json fields]; order.txt keeps the order the parts ran in
  printf '{"status": "%s"%s}\n' "$2" "${3:+, $3}" > "$parts/$1.status"
  echo "$1" >> "$parts/order.txt"
}

selected() { [ -z "$only" ] || [[ "$only" == *",$1,"* ]]; }

# run_part NAME COMMAND...: an argument @BUDGET@ becomes the seconds the part may measure in.
# stdout -> NAME.out, stderr -> NAME.err, NAME.status says how it went (lib/merge.py judges the rest).
run_part() {
  local name=$1; shift
  local now end budget
  now=$(date +%s)
  end=${slot_end[$name]}
  [ "$end" -gt $(( started + total )) ] && end=$(( started + total ))
  budget=$(( end - now ))
  if [ "$budget" -lt 5 ]; then
    status "$name" failed "\"budget_s\": $budget, \"reason\": \"no time left: its slot ended before it could start\""
    return 1
  fi
  # What the part is told: its slot less the time to print its JSON and exit (half of a short slot).
  local inner=$(( budget - GRACE_S )) args=() arg
  [ "$inner" -lt $(( budget / 2 )) ] && inner=$(( budget / 2 ))
  for arg in "$@"; do [ "$arg" = @BUDGET@ ] && args+=("$inner") || args+=("$arg"); done
  local start rc seconds
  start=$(date +%s.%N)
  timeout -k 5 "$budget" "${args[@]}" > "$parts/$name.out" 2> "$parts/$name.err"
  rc=$?
  seconds=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
  if [ $rc -eq 0 ]; then status "$name" ok "\"seconds\": $seconds, \"budget_s\": $budget"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status "$name" failed "\"seconds\": $seconds, \"budget_s\": $budget, \"rc\": $rc, \"reason\": \"ran past its $budget s\""
  else status "$name" failed "\"seconds\": $seconds, \"budget_s\": $budget, \"rc\": $rc"
  fi
  return $rc
}

# --- the node that runs the ORT part: the carried one (xz), else this machine's
node_bin="" ort_modules="$ROOT/node_modules" fallback_libs=""
carry=$ROOT/bench/gpu-check/carry
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$work/xdg}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
if [ -f "$carry/node.xz" ] && [ -f "$carry/runtime.tar.xz" ]; then
  mkdir -p "$work/rt"
  xz -dc "$carry/node.xz" > "$work/rt/node" && chmod +x "$work/rt/node"
  xz -dc "$carry/runtime.tar.xz" | tar -C "$work/rt" -xf -
  node_bin=$work/rt/node ort_modules=$work/rt/node_modules fallback_libs=$work/rt/lib-fallback
  export LD_LIBRARY_PATH="$work/rt/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
elif command -v node >/dev/null; then
  node_bin=$(command -v node)
fi

# --- env: what this machine is; points the Vulkan loader at the NVIDIA driver (vulkan.env)
run_part env "$PY" bench/gpu-check/lib/env.py --node "$node_bin" --fallback-libs "$fallback_libs" \
  --link-dir "$work/vulkan" --env-out "$work/vulkan.env"
# shellcheck disable=SC1091
[ -f "$work/vulkan.env" ] && source "$work/vulkan.env"

# --- finetune: its exported model is the model of the later parts
model=""
if selected finetune; then
  run_part finetune "$PY" bench/gpu-check/lib/finetune.py --device "$device" --steps 3 --job-dir "$work/finetune-job" \
    --budget-s @BUDGET@ "${quick_flag[@]}"
  [ -f "$work/finetune-job/model/manifest.json" ] && model=$work/finetune-job/model
fi
needs_model=0
for name in ort_webgpu torch_eager; do selected $name && needs_model=1; done
if [ -n "$model" ]; then status export skipped '"reason": "the fine-tune exported the model the later parts use"'
elif [ $needs_model -eq 1 ]; then
  preset=VQ-16; [ $quick -eq 1 ] && preset=tiny-16
  run_part export "$PY" bench/gpu-check/lib/export_part.py --random --preset $preset --variant triple --seed 0 \
    --out "$work/model" && model=$work/model
fi

if selected train_throughput; then
  if [ "$device" = cuda ]; then
    run_part train_throughput "$PY" bench/train_throughput.py --device cuda --dtype bf16 --preset VQ-16 --batch 16 \
      --steps 8 --warmup 2 --budget-s @BUDGET@
  else
    run_part train_throughput "$PY" bench/train_throughput.py --steps 2 --warmup 1 --budget-s @BUDGET@
  fi
fi

selected torch_backend && run_part torch_backend "$PY" bench/gpu-check/torch_backend.py --device "$device" \
  --budget-s @BUDGET@ "${quick_flag[@]}"

if selected ort_webgpu; then
  if [ -z "$model" ]; then status ort_webgpu failed '"reason": "no model: the fine-tune and the export both failed"'
  elif [ -z "$node_bin" ]; then status ort_webgpu failed '"reason": "no node: run bench/gpu-check/pack.sh and carry bench/gpu-check/carry"'
  elif [ $quick -eq 1 ]; then
    ORT_NODE_MODULES=$ort_modules run_part ort_webgpu "$node_bin" bench/gpu-check/ort_webgpu.mjs --model-dir "$model" \
      --batches 1 --seconds 0 --check-images 1 --min-runs 1 --budget-s @BUDGET@
  else
    ORT_NODE_MODULES=$ort_modules run_part ort_webgpu "$node_bin" bench/gpu-check/ort_webgpu.mjs --model-dir "$model" \
      --batches 1,8,32 --seconds 2 --check-images 8 --budget-s @BUDGET@
  fi
fi

selected teachers && run_part teachers "$PY" bench/gpu-check/lib/teacher_loaders.py --device "$device"

if selected torch_eager; then
  if [ -z "$model" ]; then status torch_eager failed '"reason": "no model: the fine-tune and the export both failed"'
  else run_part torch_eager "$PY" bench/gpu-check/torch_eager.py --model-dir "$model" --device "$device" \
    --budget-s @BUDGET@ "${quick_flag[@]}"
  fi
fi

"$PY" bench/gpu-check/lib/merge.py "$parts" "$OUT/gpu-check.json"
rc=$?
echo "wrote $OUT/gpu-check.json"
exit $rc
