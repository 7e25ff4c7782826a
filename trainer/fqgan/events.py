"""The trainer's stdout contract: one JSON object per line, each with "event" and "time" (unix seconds)."""
from __future__ import annotations

import json
import math
import sys
import time
from typing import Any, Optional, TextIO


def _plain(value: Any) -> Any:
    # JSON has no NaN or Infinity, and the service parses with JSON.parse: send null instead.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class Events:
    """Writes events when enabled (rank 0 of a distributed run); other ranks stay silent."""

    def __init__(self, enabled: bool = True, stream: Optional[TextIO] = None) -> None:
        self.enabled = enabled
        self.stream = stream

    def emit(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        stream = self.stream or sys.stdout
        stream.write(json.dumps(_plain({"event": event, "time": time.time(), **fields}), allow_nan=False) + "\n")
        stream.flush()


def warn(message: str) -> None:
    """Anything that is not an event goes to stderr."""
    sys.stderr.write(f"fqgan.train: {message}\n")
    sys.stderr.flush()
