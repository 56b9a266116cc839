"""Run by the browser tests in a subprocess, with the example project's settings.

    python demo_helper.py users NAME[:staff] ...       create users (password "pw") if absent
    python demo_helper.py create LABEL USERNAME JSON   create an operation, do not run it;
                                                       print {"label", "pk", "url"} as JSON
    python demo_helper.py run LABEL PK [--no-drain]    run an operation here, as a worker would

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
        from liveops.execution import execute

        label, pk, *flags = args
        execute(label, pk)
        if "--no-drain" not in flags:
            _drain_publisher()
    else:
        raise SystemExit(f"unknown command {command!r}; use users, create or run")


def _drain_publisher(timeout: float = 10.0) -> None:
    """Wait until the publisher has sent everything, before this process exits.

    A stop-gap: in a process with no running event loop and no server loop,
    liveops.publish.LiveChannel.finish() returns without waiting (``None in {loop,
    None}`` is true), so the terminal message dies with the process. Remove this once
    finish() waits there; test_worker_pushes_its_result_without_help checks it.
    """
    import asyncio

    from liveops.publish import get_publisher

    async def drain() -> None:
        current = asyncio.current_task()
        while pending := [task for task in asyncio.all_tasks() if task is not current]:
            await asyncio.wait(pending)

    asyncio.run_coroutine_threadsafe(drain(), get_publisher().loop).result(timeout)


if __name__ == "__main__":
    main(sys.argv[1:])
