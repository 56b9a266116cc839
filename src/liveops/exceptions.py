"""Exceptions raised by django-liveops."""

from __future__ import annotations

__all__ = ["LiveOpsError", "OperationCancelled", "OperationInterrupted"]


class LiveOpsError(Exception):
    """Base class for errors raised by django-liveops at run time."""


class OperationCancelled(LiveOpsError):
    """Raised by ``p.check_cancelled()`` when the viewer asked to stop the operation."""


class OperationInterrupted(LiveOpsError):
    """Raised by ``p.check_cancelled()`` when the process running the operation shuts down."""
