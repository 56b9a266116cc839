"""Translations as a person sees them: an operation keeps the language it was started in."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.pages import start
from tests.browser.support import Server

pytestmark = pytest.mark.browser


def switch_language(page: Any, name: str) -> None:
    page.get_by_label("Language of new operations").select_option(label=name)
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_label("Language of new operations")).to_have_value(
        {"Deutsch": "de", "English": "en"}[name]
    )


def test_an_operation_started_in_german_is_shown_in_german_to_everyone(
    site: Server, open_page: Any
) -> None:
    page = open_page("bob")
    page.goto(f"{site.url}/")
    switch_language(page, "Deutsch")
    live = start(page, "Long import", "Start a long import", **{"Duration (seconds)": "3"})
    container = page.locator("[data-liveop]")
    expect(container).to_have_attribute("lang", "de")
    expect(live.region("status")).to_contain_text("Läuft", timeout=15_000)
    # What the script says about the connection comes with the container, in German.
    expect(container).to_have_attribute("data-liveop-texts", re.compile("Verbindung wird"))
    expect(page.get_by_role("button", name="Abbrechen")).to_be_visible()
    expect(live.region("stages")).to_contain_text("Schritten erledigt")
    expect(live.region("status")).to_contain_text("Abgeschlossen", timeout=20_000)
    expect(live.region("result")).to_contain_text("Import finished")  # the demo's own template

    # Another viewer whose own language is English sees the operation as it started.
    english = open_page("bob")
    english.goto(f"{site.url}/")
    switch_language(english, "English")
    english.goto(page.url)
    expect(english.locator(".liveops-status")).to_contain_text("Abgeschlossen")
    expect(english.get_by_role("button", name="Erneut ausführen")).to_be_visible()
