"""Run by the browser tests in a subprocess, with the example project's settings.

    python demo_helper.py users NAME[:staff] ...       create users (password "pw") if absent
    python demo_helper.py create LABEL USERNAME JSON   create an operation, do not run it;
                                                       print {"label", "pk", "url"} as JSON
    python demo_helper.py run LABEL PK                 run an operation here, as a worker would

The tests' own process is set up for tests.settings, so anything touching the demo's
database or channel layer happens here.
"""

from __future__ import annotations

import json
import os
import sys

PASSWORD = "pw"


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    import django

    django.setup()
    command, args = argv[0], argv[1:]
    if command == "users":
        from django.contrib.auth import get_user_model

        manager = get_user_model()._default_manager
        for spec in args:
            name, _, role = spec.partition(":")
            if not manager.filter(username=name).exists():
                manager.create_user(name, password=PASSWORD, is_staff=role == "staff")
    elif command == "create":
        from django.contrib.auth import get_user_model

        from liveops.models import get_operation_model

        label, username, fields = args
        owner = get_user_model()._default_manager.get(username=username)
        op = get_operation_model(label)(owner=owner, **json.loads(fields))
        op.save()
        print(json.dumps({"label": label, "pk": str(op.pk), "url": op.get_absolute_url()}))
    elif command == "run":
        from liveops._execution import execute

        label, pk = args
        execute(label, pk)
    else:
        raise SystemExit(f"unknown command {command!r}; use users, create or run")


if __name__ == "__main__":
    main(sys.argv[1:])
