"""The signals of an operation's life, each sent once its change is committed.

The model sends them and knows nothing of who listens: the live lists and the
runners are receivers, connected in ``LiveOpsConfig.ready()`` in the order they
must run (the list shows an operation before a runner can end it).
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["operation_enqueued"]

#: An operation was saved to be run: ``sender`` is its model, ``pk`` its primary key.
operation_enqueued = Signal()
