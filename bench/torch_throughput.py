"""PyTorch side of bench/ort-vs-torch.ts: encode/decode throughput of an exported model's PyTorch
weights, plus reference tokens and decodes of generated images for the parity check.

    python bench/torch_throughput.py --model-dir DIR --out PARITY_DIR [--threads 2] [--images 8]

Prints one JSON object on stdout; writes PARITY_DIR/{input,tokens_*,margins_*,decoded}.bin + parity.json.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "trainer"))

from fqgan.checkpoint import load_served_model  # noqa: E402
from fqgan.codes import token_margins  # noqa: E402


def generated_images(count: int, size: int) -> torch.Tensor:
    """Varied deterministic pictures in [-1, 1]: waves, checkerboards, discs, gradients, noise."""
    coords = torch.linspace(-1.0, 1.0, size)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    images = []
    for i in range(count):
        g = torch.Generator().manual_seed(100 + i)
        f = 1.0 + 4.0 * torch.rand(3, generator=g)
        phase = 6.28 * torch.rand(3, generator=g)
        waves = torch.stack([torch.sin(f[c] * (x * math.cos(c + i) + y * math.sin(c + i)) * 3 + phase[c])
                             for c in range(3)])
        checker = torch.sign(torch.sin(x * (4 + i) * 3.14) * torch.sin(y * (4 + i) * 3.14))
        disc = ((x - 0.3 * math.cos(i)) ** 2 + (y - 0.3 * math.sin(i)) ** 2 < 0.2).float() * 2 - 1
        noise = torch.rand(3, size, size, generator=g) * 2 - 1
        mix = [0.7 * waves + 0.3 * checker, 0.6 * disc + 0.4 * waves, 0.5 * noise + 0.5 * waves,
               torch.stack([x, y, -x * y]) * 0.9 + 0.1 * noise][i % 4]
        images.append(mix.clamp(-1, 1))
    return torch.stack(images)


def throughput(fn, batch: int, repeats: int) -> float:
    fn()  # warm-up: allocations, oneDNN primitive creation
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return batch * repeats / (time.perf_counter() - start)


def write(directory: str, name: str, tensor: torch.Tensor, index: dict) -> None:
    array = tensor.detach().contiguous().numpy()
    array.astype({"float32": "<f4", "int64": "<i8"}[str(array.dtype)]).tofile(os.path.join(directory, f"{name}.bin"))
    index[name] = {"file": f"{name}.bin", "dtype": str(array.dtype), "shape": list(array.shape)}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--out", required=True, help="where to write the parity reference data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batches", default="1,4")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = load_served_model(args.model_dir)
    names = list(model.codebook_names)
    size = model.config.image_size
    os.makedirs(args.out, exist_ok=True)

    # Parity reference: tokens, tie margins, and decodes of those tokens, in chunks of 4.
    images = generated_images(args.images, size)
    chunks = [images[i:i + 4] for i in range(0, len(images), 4)]
    tokens = {n: torch.cat([model.encode(c).indices[n] for c in chunks]) for n in names}
    margins = {n: torch.cat([token_margins(model, c)[n] for c in chunks]) for n in names}
    decoded = torch.cat([model.decode_code({n: tokens[n][i:i + 4] for n in names}) for i in range(0, len(images), 4)])
    tensors: dict = {}
    write(args.out, "input", images, tensors)
    for n in names:
        write(args.out, f"tokens_{n}", tokens[n], tensors)
        write(args.out, f"margins_{n}", margins[n], tensors)
    write(args.out, "decoded", decoded, tensors)
    with open(os.path.join(args.out, "parity.json"), "w") as f:
        json.dump({"codebooks": names, "tensors": tensors}, f)

    result = {"threads": args.threads, "torch": torch.__version__, "encode": {}, "decode": {}}
    for batch in [int(b) for b in args.batches.split(",")]:
        x = images[:batch] if batch <= len(images) else images.repeat(math.ceil(batch / len(images)), 1, 1, 1)[:batch]
        grids = {n: t[:batch] for n, t in model.encode(x).indices.items()}
        result["encode"][str(batch)] = round(throughput(lambda: model.encode(x), batch, args.repeats), 3)
        result["decode"][str(batch)] = round(throughput(lambda: model.decode_code(grids), batch, args.repeats), 3)
        print(f"[torch] batch {batch}: encode {result['encode'][str(batch)]} img/s, "
              f"decode {result['decode'][str(batch)]} img/s", file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
