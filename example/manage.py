#!/usr/bin/env python
"""Django's command-line utility for the django-liveops demo."""

import os
import sys


def main() -> None:
    """Run administrative tasks with the demo's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
