"""The eager runner: run the operation inline, in the caller's thread (tests, CLI)."""

from __future__ import annotations

from uuid import UUID

from liveops._execution import execute
from liveops.runners import Runner

__all__ = ["EagerRunner"]


class EagerRunner(Runner):
    """Run the operation at once and return when it has finished."""

    def enqueue(self, label: str, pk: UUID | str) -> None:
        """Run the operation now."""
        execute(label, pk)
