#!/bin/bash
# Tokenize a shard set with torchrun on one machine of 8 GPUs: each rank takes every 8th shard
# (RANK, WORLD_SIZE) on GPU LOCAL_RANK. fqtok is not a Python program, hence --no-python.
# For several machines, the usual --nnodes/--node_rank/--rdzv-endpoint: ranks stay global.
#
#   bash examples/bulk-encode/torchrun.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

# torch >= 2 spells it --no-python or --no_python; torch 1.13 only --no_python (and under Python 3.11
# also needs --redirects 1 --tee 1, see test/launcher-env.test.ts).
torchrun --standalone --nproc_per_node 8 --no_python \
  npx fqtok encode '/data/laion/{00000..00127}.tar' --out /data/laion-codes --model fqgan-triple-ds16

# In the GPU image: docker run --gpus all --entrypoint /opt/venv/bin/torchrun -v /data:/data fqtok:gpu \
#   --standalone --nproc_per_node 8 --no_python node --import tsx src/cli.ts encode ... (as above)
