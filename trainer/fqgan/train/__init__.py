"""Training and fine-tuning from a JSON spec: `python -m fqgan.train` (cli.py), the spec's dataclasses and checks
(spec.py, validate.py), what a run starts from (starting_point.py), the run itself (trainer.py) and where its
checkpoints go (checkpoint_store.py). Importing the package does not import torch (`--check` stays fast)."""
from .cli import main

__all__ = ("main",)
