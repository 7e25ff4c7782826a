"""Fine-tune or train an FQGAN tokenizer from a JSON spec, reporting JSON events on stdout.

    python -m fqgan.train --spec spec.json            train (or: torchrun --nproc_per_node N -m fqgan.train ...)
    python -m fqgan.train --spec spec.json --check    validate only: {"event":"valid"} or one "error" per problem
    python -m fqgan.train --example-spec              a complete spec with every default

Exit codes: 0 finished (or spec valid), 2 spec refused, 143 cancelled by SIGTERM/SIGINT after saving a
checkpoint (a `cancelled` event names it), 1 any other failure (an `error` event says why). A stop that
cannot save and exit within `stop_deadline_s` is ended by SIGALRM (status 142).
Events go to stdout, one JSON object per line; warnings and tracebacks go to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import List, Optional

from ..events import Events, warn, write_or_discard
from .spec import Problem, SpecError, TrainSpec
from .validate import check_spec

EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


def load_spec(path: str) -> TrainSpec:
    try:
        with open(path) as f:
            values = json.load(f)
    except OSError as error:
        raise SpecError([Problem("spec", f"cannot read {path}: {error.strerror}")]) from None
    except json.JSONDecodeError as error:
        raise SpecError([Problem("spec", f"{path} is not valid JSON: {error}")]) from None
    return TrainSpec.from_dict(values)


def _refuse(events: Events, problems: List[Problem]) -> int:
    for problem in problems:
        events.emit("error", field=problem.field, message=f"{problem.field}: {problem.message}")
    return EXIT_REFUSED


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fqgan.train", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", help="path of the JSON spec")
    parser.add_argument("--check", action="store_true", help="validate the spec and exit")
    parser.add_argument("--example-spec", action="store_true", help="print a complete spec with every default")
    args = parser.parse_args(argv)

    if args.example_spec:
        print(json.dumps(TrainSpec.example().to_dict(), indent=2))
        return EXIT_OK
    if not args.spec:
        parser.error("--spec is required (or --example-spec)")

    events = Events(enabled=int(os.environ.get("RANK", "0")) == 0)
    try:
        spec = load_spec(args.spec)
    except SpecError as error:
        return _refuse(events, error.problems)
    problems = check_spec(spec)
    if problems:
        return _refuse(events, problems)
    if args.check:
        events.emit("valid")
        return EXIT_OK
    return _train(spec, events)


def _train(spec: TrainSpec, events: Events) -> int:
    # torch is imported only here, so --check and --example-spec stay fast.
    import torch

    from .. import amp, distributed
    from ..stopping import StopFlag
    from .trainer import Trainer

    stop = StopFlag(spec.stop_deadline_s)
    stop.install()
    try:
        device = amp.resolve_device(spec.device.device)
        precision = amp.resolve_precision(spec.device.precision, device)
    except ValueError as error:
        field = "device.precision" if "precision" in str(error) else "device.device"
        return _refuse(events, [Problem(field, str(error))])

    trainer = None
    try:
        dist = distributed.setup(device.type == "cuda", spec.device.dist_timeout_s)
        if device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
        trainer = Trainer(spec, events, dist, device, precision, stop)
        trainer.setup()
        return trainer.run()
    except SpecError as error:
        return _refuse(events, error.problems)
    except Exception as error:  # the service needs an event, not only a traceback
        write_or_discard(sys.stderr, traceback.format_exc())
        events.emit("error", message=f"{type(error).__name__}: {error}")
        if not events.enabled:
            warn(f"rank {os.environ.get('RANK', '?')} failed: {error}")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # After a failed collective, destroying the process group can deadlock (torch joins gloo's
            # worker thread while holding the GIL that thread waits for): leave without tearing down.
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except OSError:
                    pass
            os._exit(EXIT_FAILED)
        return EXIT_FAILED
    finally:
        if trainer is not None:
            trainer.close()
        distributed.teardown()
