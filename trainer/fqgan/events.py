"""The trainer's stdout contract: one JSON object per line, each with "event" and "time" (unix seconds)."""
from __future__ import annotations

import json
import math
import os
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
        line = json.dumps(_plain({"event": event, "time": time.time(), **fields}), allow_nan=False) + "\n"
        write_or_discard(self.stream or sys.stdout, line)


def warn(message: str) -> None:
    """Anything that is not an event goes to stderr."""
    write_or_discard(sys.stderr, f"fqgan.train: {message}\n")


def write_or_discard(stream: TextIO, text: str) -> None:
    """Write and flush; once the reader is gone (the service died), later output goes nowhere.

    A broken pipe must not end the run with an exception: the trainer still has its checkpoint to
    save and its workers to stop, and the service that would have read the output is not there.
    """
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())  # also keeps the flush at interpreter exit from failing
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass  # a stream without a file descriptor: nothing to redirect
