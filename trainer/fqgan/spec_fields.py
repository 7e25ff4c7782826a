"""What a fine-tuning request may set, as data: every hyperparameter and device setting with its type, default,
help and limits, taken from the TrainSpec dataclasses (the one place they are declared).

    python -m fqgan.spec_fields    # JSON on stdout; the service serves it to the console's job form

Importing this module does not import torch.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import typing
from typing import Any, Dict, List

from .train.spec import DeviceSpec, Hyperparameters

# The sections of spec.json a request may fill; the rest (paths, model, weights) the service decides.
SECTIONS = {"hyperparameters": Hyperparameters, "device": DeviceSpec}


def _type_of(hint: Any) -> Dict[str, Any]:
    args = typing.get_args(hint)
    nullable = typing.get_origin(hint) is typing.Union and type(None) in args
    if nullable:
        hint = next(a for a in args if a is not type(None))
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return {"type": names.get(hint, "object"), "nullable": nullable}


def describe_section(cls: type) -> List[Dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    defaults = cls()
    fields = []
    for f in dataclasses.fields(cls):
        check = f.metadata.get("check")
        fields.append({
            "name": f.name,
            **_type_of(hints[f.name]),
            "default": getattr(defaults, f.name),
            "help": f.metadata.get("help", ""),
            **dict(getattr(check, "limits", {})),
        })
    return fields


def describe() -> Dict[str, List[Dict[str, Any]]]:
    return {name: describe_section(cls) for name, cls in SECTIONS.items()}


def main() -> int:
    json.dump(describe(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
