"""Where the trainer's checkpoints live: output_dir/checkpoints/<step:07d>.pt (the reference's naming),
written atomically, with only the newest few kept."""
from __future__ import annotations

import os
import re
from typing import Any, List, Mapping

import torch

_NAME = re.compile(r"^(\d{7,})\.pt$")


class CheckpointStore:
    def __init__(self, folder: str, keep: int) -> None:
        self.folder = folder
        self.keep = keep  # 0 keeps every checkpoint

    def path(self, step: int) -> str:
        return os.path.abspath(os.path.join(self.folder, f"{step:07d}.pt"))

    def steps(self) -> List[int]:
        if not os.path.isdir(self.folder):
            return []
        return sorted(int(m.group(1)) for m in map(_NAME.match, os.listdir(self.folder)) if m)

    def save(self, state: Mapping[str, Any], step: int) -> str:
        """Write to a temporary name and rename, so a crash or kill never leaves half a checkpoint."""
        os.makedirs(self.folder, exist_ok=True)
        path = self.path(step)
        partial = path + ".partial"
        torch.save(dict(state), partial)
        os.replace(partial, path)
        if self.keep:
            for old in self.steps()[:-self.keep]:
                if old != step:
                    os.remove(self.path(old))
        return path
