"""Round-trips an image through a running fqtok server, with only the standard library and numpy.

    python3 examples/client.py http://localhost:8080 photo.jpg reconstruction.png
"""
import io
import json
import sys
import urllib.request

import numpy as np


def encode(server: str, image: bytes) -> dict:
    """Image bytes -> {codebook: int32 array [N=1, views=1, h, w]}."""
    request = urllib.request.Request(
        f"{server}/encode?format=npz", data=image, headers={"Content-Type": "image/*"}
    )
    with urllib.request.urlopen(request) as response:
        return dict(np.load(io.BytesIO(response.read())))


def decode(server: str, codes: dict) -> bytes:
    """{codebook: int array} -> PNG bytes of the reconstruction."""
    buffer = io.BytesIO()
    np.savez(buffer, **codes)
    request = urllib.request.Request(
        f"{server}/decode", data=buffer.getvalue(), headers={"Content-Type": "application/x-npz"}
    )
    with urllib.request.urlopen(request) as response:
        return response.read()


if __name__ == "__main__":
    server, image_path, out_path = sys.argv[1:4]
    with open(image_path, "rb") as f:
        codes = encode(server, f.read())
    png = decode(server, codes)
    with open(out_path, "wb") as f:
        f.write(png)
    print(json.dumps({name: list(array.shape) for name, array in codes.items()}))
