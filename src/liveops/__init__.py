"""Run a long operation in Django and show it live over a WebSocket."""

__version__ = "0.1.0.dev0"
