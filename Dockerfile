# fqtok images. Two targets:
#   cpu  serving on onnxruntime's CPU execution provider, and PyTorch's CPU build so that it converts what
#        it pulls from the Hub (FQ_PULL, fqtok pull, convert) and can fine-tune on the CPU
#   gpu  NVIDIA: CUDA 13 + cuDNN 9 for onnxruntime's CUDA EP (its libraries checked at build time), the
#        Vulkan loader for its WebGPU EP, PyTorch with CUDA so fine-tuning jobs (and `convert`) train and
#        export on the GPU, and a C compiler for torch.compile (FQ_TORCH_COMPILE=1)
#
#   docker build --target cpu -t fqtok:cpu .
#   docker build --target gpu -t fqtok:gpu .
#
# Both run as an unprivileged user, keep models in /models and everything they write in /data
# (volumes), answer HEALTHCHECK on /readyz, and run node directly under tini, so that SIGTERM reaches
# the service and it drains in-flight requests before it exits.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
# PyTorch's wheel index for the CUDA version of CUDA_IMAGE, and its CPU-only index for the cpu image.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu

# ---------------------------------------------------------------- Node packages (production only)
FROM ${NODE_IMAGE} AS node-deps
# better-sqlite3 compiles from source when its prebuilt binary cannot be downloaded.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# npm >= 11.16 already skips onnxruntime-node's install script (package.json allowScripts); older npm
# (the one in node:20 images) would run it, and it downloads the CUDA EP from NuGet. The CPU image
# needs none of that: say so for any npm.
# onnxruntime-node ships binaries for every OS (220 of its 290 MB are macOS and Windows ones).
RUN ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/onnxruntime-node/bin/napi-v6/darwin node_modules/onnxruntime-node/bin/napi-v6/win32 \
 && npm cache clean --force

# ---------------------------------------------------------------- + onnxruntime's CUDA EP
FROM node-deps AS node-deps-cuda
# The CUDA EP is not in the npm package; onnxruntime-node's installer fetches it from NuGet. "cuda12"
# is the installer's only name for it: from onnxruntime 1.27 on, the build it fetches is for CUDA 13
# and cuDNN 9. Run explicitly, because npm >= 11.16 does not run the package's install script.
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so

# ---------------------------------------------------------------- the application files
FROM scratch AS source
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY trainer/fqgan ./trainer/fqgan
# The untrained default model, so that an empty models volume serves at once (Docker copies an image
# folder into a new named volume mounted over it).
COPY models /models

# ---------------------------------------------------------------- cpu
FROM ${NODE_IMAGE} AS cpu
ARG TORCH_CPU_INDEX_URL
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini python3 python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/fqtok fqtok \
 && mkdir -p /data \
 && chown fqtok:fqtok /data
# PyTorch's CPU-only build (about 200 MB to download, against 2-3 GB for a CUDA build; Debian's
# python3-torch would add 1.04 GiB of packages, OpenCV, ffmpeg and GDAL among them) in a venv: the
# exporter converts pulled checkpoints with it, and fine-tuning jobs run on the CPU.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --index-url "${TORCH_CPU_INDEX_URL}" torch \
 && /opt/venv/bin/pip install --no-cache-dir numpy pillow
WORKDIR /app
COPY --from=node-deps /app/node_modules ./node_modules
COPY --from=source /app ./
COPY --from=source --chown=fqtok:fqtok /models /models
# The Hub's cache and torch's (pulled checkpoints and training weights) live in the /data volume.
ENV NODE_ENV=production \
    FQ_HOST=0.0.0.0 \
    FQ_PORT=8080 \
    FQ_MODELS_DIR=/models \
    FQ_DATA_DIR=/data \
    FQ_PYTHON=/opt/venv/bin/python \
    HF_HOME=/data/huggingface \
    TORCH_HOME=/data/torch
USER fqtok
VOLUME ["/models", "/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.FQ_PORT}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# `docker run IMAGE` serves; `docker run IMAGE encode /data/images --out /data/codes` runs the CLI.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--import", "tsx", "src/cli.ts"]
CMD ["serve"]

# ---------------------------------------------------------------- gpu
FROM ${NODE_IMAGE} AS node-binary

FROM ${CUDA_IMAGE} AS gpu
ARG TORCH_INDEX_URL
# compute,utility: CUDA; graphics: the driver's Vulkan ICD, which the WebGPU EP (Dawn) runs on.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics
# libglvnd0, libx11-6, libxext6: what the driver's Vulkan library (libGLX_nvidia.so.0) links against.
# gcc, libc6-dev, python3-dev: Triton compiles a small C module at run time, so FQ_TORCH_COMPILE=1 (the torch
# backend's torch.compile) needs a C compiler and Python's headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini libvulkan1 libglvnd0 libx11-6 libxext6 python3 python3-venv \
      python3-dev gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# PyTorch with CUDA for the trainer (fine-tuning jobs, `convert`), in a venv (Ubuntu's Python is
# externally managed). numpy and Pillow: data loading; onnx: export checks; torchvision: optional
# torchvision-exact LPIPS backbone.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" torch torchvision \
 && /opt/venv/bin/pip install --no-cache-dir numpy pillow onnx
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/fqtok fqtok \
 && mkdir -p /data /run/user/10001 \
 && chown fqtok:fqtok /data /run/user/10001 \
 && chmod 700 /run/user/10001
# Node from the official image: the node binary needs only glibc >= 2.28 and libstdc++.
COPY --from=node-binary /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=node-deps-cuda /app/node_modules ./node_modules
# The CUDA EP must find every library it links against in this image (libcuda.so.1 alone comes from the
# host's driver at run time): a missing one fails the build here, not the provider check at start-up.
RUN cd node_modules/onnxruntime-node/bin/napi-v6/linux/x64 \
 && LD_LIBRARY_PATH=$PWD ldd libonnxruntime_providers_cuda.so > /tmp/cuda-ep.ldd \
 && if grep 'not found' /tmp/cuda-ep.ldd | grep -v 'libcuda\.so\.1 '; then \
      echo "the CUDA EP lacks the libraries above" >&2; exit 1; fi \
 && rm /tmp/cuda-ep.ldd
COPY --from=source /app ./
COPY --from=source --chown=fqtok:fqtok /models /models
ENV NODE_ENV=production \
    FQ_HOST=0.0.0.0 \
    FQ_PORT=8080 \
    FQ_MODELS_DIR=/models \
    FQ_DATA_DIR=/data \
    FQ_PYTHON=/opt/venv/bin/python \
    HF_HOME=/data/huggingface \
    TORCH_HOME=/data/torch \
    FQ_EXECUTION_PROVIDERS=cuda,cpu \
    XDG_RUNTIME_DIR=/run/user/10001
USER fqtok
VOLUME ["/models", "/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.FQ_PORT}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "--import", "tsx", "src/cli.ts"]
CMD ["serve"]
