"""``manage.py demo_user``: make sure the user "demo" (password "demo") exists."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = 'Create the user "demo" with the password "demo" unless it exists already.'

    def add_arguments(self, parser: CommandParser) -> None:
        """``--port``: the port the demo is about to be served on (``make demo PORT=…``)."""
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        if user_model._default_manager.filter(username="demo").exists():
            # Never reset the password of an existing user.
            self.stdout.write('The user "demo" exists already; its password is left as it is.')
        else:
            user_model._default_manager.create_user("demo", password="demo")
            self.stdout.write('Created the user "demo".')
        self.stdout.write(f"Open http://127.0.0.1:{options['port']} and log in as demo / demo")
