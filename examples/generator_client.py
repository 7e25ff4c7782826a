"""Decodes an autoregressive sampler's output through a running fqtok server, with only the standard library and numpy.

An AR sampler (e.g. the reference's sample_c2i_ddp_triple_code.py) emits one index tensor [B, h*w] per
codebook; this client sends them as they are and gets back images, or writes the evaluation archive that
the ADM evaluation suite reads (FID, IS, precision, recall): one .npz with arr_0, uint8 [N, H, W, 3].

    python3 examples/generator_client.py http://localhost:8080 --batches 4 --batch-size 8 --out samples.npz
    python3 examples/generator_client.py http://localhost:8080 --batches 1 --out-dir samples/

The sampler here draws random indices as a stand-in: replace `random_sampler` with your model's sampling.
"""
import argparse
import base64
import io
import json
import os
import sys
import urllib.request
import zipfile

import numpy as np


class FqtokDecoder:
    """Index tensors [B, h*w] (one per codebook) -> images, through POST /decode."""

    def __init__(self, server: str, model: str = None):
        self.server = server.rstrip("/")
        self.model = model

    def model_info(self) -> dict:
        """The model's grid and codebooks, from GET /models."""
        path = f"/models/{self.model}" if self.model else "/models"
        with urllib.request.urlopen(self.server + path) as response:
            body = json.load(response)
        return body if self.model else next(m for m in body["models"] if m["name"] == body["default"])

    def _post(self, indices: dict, query: str, accept: str) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(a) for name, a in indices.items()})
        model = f"&model={self.model}" if self.model else ""
        request = urllib.request.Request(
            f"{self.server}/decode?{query}{model}",
            data=buffer.getvalue(),
            headers={"Content-Type": "application/x-npz", "Accept": accept},
        )
        with urllib.request.urlopen(request) as response:
            return response.read()

    def decode(self, indices: dict) -> np.ndarray:
        """{codebook: int array [B, h*w]} -> uint8 [B, H, W, 3]."""
        with np.load(io.BytesIO(self._post(indices, "format=npz", "application/x-npz"))) as archive:
            return archive["arr_0"]

    def decode_png(self, indices: dict) -> list:
        """{codebook: int array [B, h*w]} -> B PNG files (bytes)."""
        body = json.loads(self._post(indices, "format=png", "application/json"))
        return [base64.b64decode(image["data"]) for image in body["images"]]


class SampleArchive:
    """Writes arr_0, uint8 [count, H, W, 3], batch by batch into an .npz, holding one batch at a time.

    The npy header needs the full shape first, so the count is given up front and H, W come with the first
    batch. The file is written under a temporary name and renamed when complete.
    """

    def __init__(self, path: str, count: int):
        self.path, self.count, self.written = path, count, 0
        self.partial = path + ".partial"
        self.zip = zipfile.ZipFile(self.partial, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.entry = None

    def add(self, images: np.ndarray) -> None:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if self.entry is None:
            self.entry = self.zip.open("arr_0.npy", "w", force_zip64=True)
            header = {"descr": "|u1", "fortran_order": False, "shape": (self.count, *images.shape[1:])}
            np.lib.format.write_array_header_1_0(self.entry, header)
        self.entry.write(images.tobytes())
        self.written += len(images)

    def close(self) -> None:
        if self.written != self.count:
            raise ValueError(f"{self.written} samples written, {self.count} declared")
        self.entry.close()
        self.zip.close()
        os.replace(self.partial, self.path)


def random_sampler(rng: np.random.Generator, codebooks: list, batch: int, cells: int) -> dict:
    """Stand-in for an AR model's sample(): one index tensor [batch, h*w] per codebook."""
    return {cb["name"]: rng.integers(0, cb["size"], size=(batch, cells), dtype=np.int64) for cb in codebooks}


def main(argv: list) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("server")
    parser.add_argument("--model")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the evaluation archive here (.npz)")
    parser.add_argument("--out-dir", help="write one PNG per sample here")
    parser.add_argument("--save-indices", help="also save the sampled indices, [N, h*w] per codebook (.npz)")
    args = parser.parse_args(argv)

    decoder = FqtokDecoder(args.server, args.model)
    info = decoder.model_info()
    cells = info["grid"][0] * info["grid"][1]
    rng = np.random.default_rng(args.seed)
    archive = SampleArchive(args.out, args.batches * args.batch_size) if args.out else None
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
    sampled = []
    for b in range(args.batches):
        indices = random_sampler(rng, info["codebooks"], args.batch_size, cells)
        sampled.append(indices)
        if archive:
            archive.add(decoder.decode(indices))
        if args.out_dir:
            for k, png in enumerate(decoder.decode_png(indices)):
                with open(os.path.join(args.out_dir, f"{b * args.batch_size + k:06d}.png"), "wb") as f:
                    f.write(png)
    if archive:
        archive.close()
    if args.save_indices:
        np.savez(args.save_indices, **{cb: np.concatenate([s[cb] for s in sampled]) for cb in sampled[0]})
    print(json.dumps({"samples": args.batches * args.batch_size, "out": args.out, "out_dir": args.out_dir}))


if __name__ == "__main__":
    main(sys.argv[1:])
