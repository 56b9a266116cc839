"""The demo with the package's own look: its pages get liveops/base.html from the package.

The demo's settings, with ``liveops`` before ``demo`` in ``INSTALLED_APPS``, so the
package's templates win over the demo's override of ``liveops/base.html``. The browser
tests serve it to check the default pages (docs/styling.md); try it with::

    DJANGO_SETTINGS_MODULE=demo_site.settings_plain uvicorn demo_site.asgi:application
"""

from __future__ import annotations

from demo_site.settings import *  # noqa: F403
from demo_site.settings import INSTALLED_APPS

INSTALLED_APPS = ["liveops", *(app for app in INSTALLED_APPS if app != "liveops")]
