#!/usr/bin/env bash
# Prepares bench/gpu-check/carry/ for a GPU machine that has no Node and fetches nothing: this
# machine's node binary, onnxruntime-node (linux-x64 binding + libonnxruntime.so.1 with the WebGPU EP)
# and the Vulkan loader, xz-compressed, under the 64 MiB that travels per run. Ignored by git.
#   bash bench/gpu-check/pack.sh          then carry "bench/gpu-check/carry" with the repository
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/gpu-check/carry
limit=$((64 * 1024 * 1024))
rm -rf "$out" && mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

node_bin=$(command -v node)
xz -9 -T0 -c "$node_bin" > "$out/node.xz"

mkdir -p "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux" "$stage/lib"
cp -r node_modules/onnxruntime-node/package.json node_modules/onnxruntime-node/dist "$stage/node_modules/onnxruntime-node/"
cp -r node_modules/onnxruntime-node/bin/napi-v6/linux/x64 "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux/"
cp -r node_modules/onnxruntime-common "$stage/node_modules/"
# The Vulkan loader (the GPU's Vulkan driver, its ICD, comes with the NVIDIA driver there).
loader=$(ldconfig -p | awk '/libvulkan.so.1 .*x86-64/ && !found {print $NF; found = 1}')
[ -n "$loader" ] || { echo "pack.sh: no libvulkan.so.1 here (apt-get install libvulkan1)" >&2; exit 1; }
cp -L "$loader" "$stage/lib/libvulkan.so.1"
tar -C "$stage" -cf - node_modules lib | xz -9 -T0 > "$out/runtime.tar.xz"
{
  echo "node $("$node_bin" --version)"
  echo "onnxruntime-node $(node -p "require('./node_modules/onnxruntime-node/package.json').version")"
  echo "libvulkan $(readlink -f "$loader")"
} > "$out/VERSIONS"

size=$(du -cb "$out" | tail -1 | cut -f1)
echo "{\"carry\": \"$out\", \"bytes\": $size, \"limit\": $limit}"
[ "$size" -lt "$limit" ] || { echo "pack.sh: $out is $size bytes, over the 64 MiB that travels" >&2; exit 1; }
