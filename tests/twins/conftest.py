"""Fixtures for the twins' tests: a real SeaweedFS S3 server."""

from __future__ import annotations

from tests.seaweed import seaweed

__all__ = ["seaweed"]
