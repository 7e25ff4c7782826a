#!/usr/bin/env bash
# Prepares bench/gpu-check/carry/ for a GPU machine that has no Node and fetches nothing: this
# machine's node binary, onnxruntime-node (linux-x64 binding + libonnxruntime.so.1 with the WebGPU EP),
# the Vulkan loader and the libraries the NVIDIA Vulkan driver may lack there, xz-compressed, under the
# 64 MiB that travels per run. Ignored by git.
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
library() { ldconfig -p | awk -v name="$1" '$1 == name && /x86-64/ && !found {print $NF; found = 1}'; }
loader=$(library libvulkan.so.1)
[ -n "$loader" ] || { echo "pack.sh: no libvulkan.so.1 here (apt-get install libvulkan1)" >&2; exit 1; }
cp -L "$loader" "$stage/lib/libvulkan.so.1"
# What the NVIDIA Vulkan driver (libGLX_nvidia.so.0) links against and a compute-only machine may lack:
# glvnd's dispatcher and the X client libraries. run.sh (lib/env.py) links only those the driver lacks.
mkdir -p "$stage/lib-fallback"
fallbacks=""
for name in libGLdispatch.so.0 libX11.so.6 libXext.so.6 libxcb.so.1 libXau.so.6 libXdmcp.so.6 libbsd.so.0 libmd.so.0; do
  path=$(library "$name")
  if [ -n "$path" ]; then cp -L "$path" "$stage/lib-fallback/$name" && fallbacks+=" $name"
  else echo "pack.sh: no $name here (apt-get install libglvnd0 libx11-6 libxext6): not carried" >&2
  fi
done
tar -C "$stage" -cf - node_modules lib lib-fallback | xz -9 -T0 > "$out/runtime.tar.xz"
{
  echo "node $("$node_bin" --version)"
  echo "onnxruntime-node $(node -p "require('./node_modules/onnxruntime-node/package.json').version")"
  echo "libvulkan $(readlink -f "$loader")"
  echo "fallback libraries:$fallbacks"
} > "$out/VERSIONS"

size=$(du -cb "$out" | tail -1 | cut -f1)
echo "{\"carry\": \"$out\", \"bytes\": $size, \"limit\": $limit}"
[ "$size" -lt "$limit" ] || { echo "pack.sh: $out is $size bytes, over the 64 MiB that travels" >&2; exit 1; }
