"""Benchmarks that print the figures of DESIGN.md (never timed test assertions)."""

import json
from typing import Any

FIGURES = "figures: "


def emit(**figures: Any) -> None:
    """Print a run's key figures as one JSON line, for ``python -m bench`` to tabulate."""
    print(FIGURES + json.dumps(figures), flush=True)
