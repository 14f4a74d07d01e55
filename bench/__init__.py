"""Benchmarks that print the figures of DESIGN.md (never timed test assertions)."""

import asyncio
import json
import sys
from typing import Any

FIGURES = "figures: "


def emit(**figures: Any) -> None:
    """Print a run's key figures as one JSON line, for ``python -m bench`` to tabulate."""
    print(FIGURES + json.dumps(figures), flush=True)


async def spawn(module: str, *args: str) -> asyncio.subprocess.Process:
    """``python -m module args`` with pipes to its stdin and from its stdout (one role of a
    benchmark that runs in several processes)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
