"""Run a long operation in Django and show it live over a WebSocket."""

__version__ = "1.0.0a1"
