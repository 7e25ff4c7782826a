"""Files for the Hub stand-in of test/hub-pull.test.ts, made with the trainer's own code:

  checkpoint.pt          a test-16 Triple FQGAN saved as the released checkpoints are: a torch.save of
                         {"model": state_dict, "optimizer", "discriminator", "steps", "args": Namespace}
  vgg16.pth              torchvision-format VGG16 features (float16 keeps it at 29 MB; loaded as float32)
  lpips_vgg.pth          LPIPS v0.1 linear layers, named as the LPIPS release names them
  dinov2/config.json, dinov2/model.safetensors      a tiny DINOv2 tower (32 wide: test-16's sem_mid head)
  clip/config.json, clip/pytorch_model.bin          a tiny CLIP vision tower (64 wide: its sem_high head)

    python3 make_hub_fixtures.py OUT   (PYTHONPATH=trainer:trainer/tests)
"""
import argparse
import os
import sys

import torch

from fqgan.config import preset
from fqgan.lpips import CHANNELS, VGG16Features
from fqgan.model import FQGAN
from teacher_fixtures import save_pretrained, tiny_backbone


def main(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = FQGAN(preset("test-16", "triple"))
    args = argparse.Namespace(vq_model="VQ-16", codebook_size=256, codebook_embed_dim=4, image_size=256)
    torch.save({"model": model.state_dict(), "optimizer": None, "discriminator": None, "steps": 0, "args": args},
               os.path.join(out, "checkpoint.pt"))

    features = VGG16Features().features.state_dict()
    torch.save({f"features.{k}": v.half() for k, v in features.items()}, os.path.join(out, "vgg16.pth"))
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) * 0.1 for i, c in enumerate(CHANNELS)},
               os.path.join(out, "lpips_vgg.pth"))

    save_pretrained(tiny_backbone("dino", 32, seed=1), "dino", os.path.join(out, "dinov2"))
    clip = tiny_backbone("clip", 64, seed=2)
    save_pretrained(clip, "clip", os.path.join(out, "clip"))
    # The CLIP repository of the stand-in keeps its weights as pytorch_model.bin only, as older Hub repos do.
    os.remove(os.path.join(out, "clip", "model.safetensors"))
    torch.save(clip.state_dict(), os.path.join(out, "clip", "pytorch_model.bin"))


if __name__ == "__main__":
    main(sys.argv[1])
