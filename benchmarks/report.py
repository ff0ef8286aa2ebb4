"""The JSON report a training benchmark writes: its results, the machine, its arguments."""

from __future__ import annotations

import argparse
import json
import os
import platform
from typing import Any


def save(
    out: dict[str, Any],
    args: argparse.Namespace,
    load_start: tuple[float, float, float],
    seconds: float,
) -> None:
    """Add the machine (load average at the start and now), the arguments and the wall time
    to ``out``, write it to ``args.out`` and say where."""
    out["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
    }
    out["args"] = {k: str(v) for k, v in vars(args).items()}
    out["total_seconds"] = round(seconds, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{seconds:.0f} s; JSON: {args.out}")
