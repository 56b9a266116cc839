"""The shipped translations: complete, compiled, and used by the live fragments.

Catalogues live in src/liveops/locale/<lang>/LC_MESSAGES/django.po (and .mo);
scripts/update-translations re-extracts and compiles them (docs/i18n.md).
"""

from __future__ import annotations

import ast
import gettext
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

import liveops
from liveops._fragments import render_container, render_regions
from liveops._state import Phase, StageState, StateView
from tests.conftest import need
from tests.dom import parse
from tests.testapp.models import Scripted

PACKAGE = Path(liveops.__file__).resolve().parent
LOCALE = PACKAGE / "locale"

#: Shipped languages: locale directory name -> (Django language code, plural forms).
LANGUAGES = {
    "de": ("de", 2),
    "es": ("es", 2),
    "fr": ("fr", 2),
    "ja": ("ja", 1),
    "pl": ("pl", 3),
    "pt_BR": ("pt-br", 2),
    "uk": ("uk", 3),
    "zh_Hans": ("zh-hans", 1),
}
CODES = [code for code, _plurals in LANGUAGES.values()]
FIX = "run scripts/update-translations, translate what it lists, and run it again"


# --- reading .po files -------------------------------------------------------------------


@dataclass
class Entry:
    """One message of a .po file."""

    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)

    def __str__(self) -> str:
        context = f"{self.msgctxt!r} | " if self.msgctxt is not None else ""
        plural = f" / {self.msgid_plural!r}" if self.msgid_plural is not None else ""
        return f"{context}{self.msgid!r}{plural}"


_FIELD = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+(\".*\")$")


def read_po(path: Path) -> list[Entry]:
    """Return the entries of a .po file (obsolete ones left out), the header first."""
    entries: list[Entry] = []
    entry, last = Entry(), ""

    def finish() -> None:
        nonlocal entry, last
        if last:
            entries.append(entry)
            entry, last = Entry(), ""

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            finish()
        elif line.startswith("#~"):
            continue
        elif line.startswith("#,"):
            finish()
            entry.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            finish()
        elif line.startswith('"'):
            _append(entry, last, ast.literal_eval(line))
        else:
            match = _FIELD.match(line)
            assert match, f"{path}: cannot read {line!r}"
            name, index, text = match.groups()
            if name == "msgctxt" or (name == "msgid" and last.startswith("msgstr")):
                finish()
            last = f"msgstr[{index or 0}]" if name.startswith("msgstr") else name
            if name.startswith("msgstr"):
                entry.msgstr[int(index or 0)] = ""
            _append(entry, last, ast.literal_eval(text))
    finish()
    return entries


def _append(entry: Entry, name: str, text: str) -> None:
    if name.startswith("msgstr"):
        index = int(name[7:-1])
        entry.msgstr[index] += text
    elif name == "msgid":
        entry.msgid += text
    else:
        value = getattr(entry, name) or ""
        setattr(entry, name, value + text)


def po_path(lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES" / "django.po"


def header(lang: str) -> dict[str, str]:
    (head, *_rest) = read_po(po_path(lang))
    assert head.msgid == "", f"{po_path(lang)} has no header"
    return dict(line.split(": ", 1) for line in head.msgstr[0].splitlines() if ": " in line)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> list[Entry]:
    """The package's messages, extracted afresh from a copy of its code."""
    need(shutil.which("xgettext") is not None, "xgettext (GNU gettext) is not installed")
    need(shutil.which("msgmerge") is not None, "msgmerge (GNU gettext) is not installed")
    copy = tmp_path_factory.mktemp("extract") / "liveops"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("locale", "__pycache__"))
    (copy / "locale").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(copy)
        call_command("makemessages", locale=["de"], keep_pot=True, verbosity=0)
    entries = read_po(copy / "locale" / "django.pot")[1:]
    assert len(entries) > 40, "extraction found too few messages: is makemessages broken?"
    return entries


# --- the catalogues ------------------------------------------------------------------------


def test_every_shipped_language_has_a_catalogue() -> None:
    shipped = {p.parent.parent.name for p in LOCALE.glob("*/LC_MESSAGES/django.po")}
    assert shipped == set(LANGUAGES)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_the_header_names_the_language_and_its_plural_forms(lang: str) -> None:
    found = header(lang)
    assert found["Language"] == lang
    assert found["Content-Type"] == "text/plain; charset=UTF-8"
    plurals = re.match(r"nplurals=(\d+);", found["Plural-Forms"])
    assert plurals, found["Plural-Forms"]
    assert int(plurals.group(1)) == LANGUAGES[lang][1]


def _report(lang: str, problems: dict[str, list[str]], fix: str) -> None:
    if any(problems.values()):
        pytest.fail(
            f"{po_path(lang).relative_to(PACKAGE.parent.parent)} is out of date.\n"
            + "".join(f"{kind}: {', '.join(ids)}\n" for kind, ids in problems.items() if ids)
            + f"To fix it, {fix}.",
            pytrace=False,
        )


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_every_extracted_message_is_translated(lang: str, extracted: list[Entry]) -> None:
    nplurals = LANGUAGES[lang][1]
    shipped = {entry.key: entry for entry in read_po(po_path(lang))[1:]}
    missing = [str(e) for e in extracted if e.key not in shipped]
    fuzzy = [str(e) for e in shipped.values() if "fuzzy" in e.flags]
    forms = [
        str(e) for e in shipped.values() if len(e.msgstr) != (nplurals if e.msgid_plural else 1)
    ]
    empty = [str(e) for e in shipped.values() if not all(e.msgstr.values())]
    problems = {
        "missing": missing,
        "fuzzy": fuzzy,
        "untranslated": empty,
        "wrong plural forms": forms,
    }
    _report(lang, problems, FIX)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_every_catalogue_message_comes_from_the_code(lang: str, extracted: list[Entry]) -> None:
    known = {e.key for e in extracted}
    unmarked = [str(e) for e in read_po(po_path(lang))[1:] if e.key not in known]
    fix = (
        "mark each in src/liveops if the code still shows it (gettext_noop for a text"
        " translated later, from a variable), then run scripts/update-translations"
        " (which also drops the ones the code no longer has)"
    )
    _report(lang, {"not extracted from the code": unmarked}, fix)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_placeholders_are_kept(lang: str) -> None:
    placeholder = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdifr]|\{\w+\}")
    for entry in read_po(po_path(lang))[1:]:
        wanted = set(placeholder.findall(entry.msgid))
        for index, text in entry.msgstr.items():
            assert set(placeholder.findall(text)) == wanted, (lang, str(entry), index, text)


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_the_compiled_catalogue_matches_its_source(lang: str, tmp_path: Path) -> None:
    need(shutil.which("msgfmt") is not None, "msgfmt (GNU gettext) is not installed")
    po = po_path(lang)
    fresh = tmp_path / "django.mo"
    compiled = subprocess.run(
        ["msgfmt", "--check", "-o", str(fresh), str(po)], capture_output=True, text=True
    )
    if compiled.returncode:
        pytest.fail(f"msgfmt rejects {po}:\n{compiled.stderr}", pytrace=False)
    with po.with_suffix(".mo").open("rb") as shipped_file, fresh.open("rb") as fresh_file:
        shipped, expected = (
            gettext.GNUTranslations(shipped_file),
            gettext.GNUTranslations(fresh_file),
        )
    catalogue: dict[Any, str] = getattr(shipped, "_catalog", {})
    assert catalogue == getattr(expected, "_catalog", None), (
        f"{po.with_suffix('.mo')} is stale: {FIX}."
    )
    counts = range(200)
    assert [shipped.plural(n) for n in counts] == [expected.plural(n) for n in counts]


# --- rendering ------------------------------------------------------------------------------


def status_label(html: str) -> str:
    (region,) = parse(html)
    (label,) = region.find_class("liveops-state")
    return str(label.text_content())


def summary(html: str) -> str:
    (region,) = parse(html)
    (said,) = region.find_class("liveops-stage-summary")
    return " ".join(said.text_content().split())


@pytest.mark.django_db
@pytest.mark.parametrize("code", CODES)
def test_the_status_is_said_in_the_language_the_operation_started_in(user: Any, code: str) -> None:
    op = Scripted.objects.create(owner=user, language=code, started_on=timezone.now())
    op.refresh_from_db()
    other = "ja" if code != "ja" else "de"
    with translation.override(other):  # the rendering thread's language does not matter
        html = render_regions(op, op.to_view(), ["status"])
    with translation.override(code):
        expected = _("In progress")
    assert expected != "In progress", f"no {code} translation of 'In progress': {FIX}"
    assert status_label(html) == expected


PHASE_VIEWS = {
    **{phase.name: StateView(phase=phase) for phase in Phase},
    "INTERRUPTED": StateView(phase=Phase.FINISHED_ERROR, interrupted=True),
}


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("phase", list(PHASE_VIEWS))
def test_every_phase_label_is_translated(code: str, phase: str) -> None:
    view = PHASE_VIEWS[phase]
    english = status_label(render_regions(Scripted(owner_id=1, language="en"), view, ["status"]))
    said = status_label(render_regions(Scripted(owner_id=1, language=code), view, ["status"]))
    assert said != english, (
        f"the {phase} label {english!r} is not translated into {code}: is it marked for"
        f" extraction (gettext_noop), and is it in the catalogue? {FIX}"
    )


def stages_view(total: int, done: int) -> StateView:
    states = [StageState.DONE] * done + [StageState.PENDING] * (total - done)
    return StateView(phase=Phase.STARTED, stages=tuple((f"S{n}", s) for n, s in enumerate(states)))


@pytest.mark.parametrize(
    ("lang", "forms"),
    [
        # total -> the plural form the language's grammar wants
        ("pl", {1: 0, 2: 1, 4: 1, 5: 2, 12: 2, 21: 2, 22: 1, 25: 2}),
        ("uk", {1: 0, 2: 1, 4: 1, 5: 2, 11: 2, 12: 2, 21: 0, 22: 1}),
    ],
)
def test_the_stage_summary_uses_the_right_plural(lang: str, forms: dict[int, int]) -> None:
    (entry,) = [e for e in read_po(po_path(lang)) if e.msgid == "%(done)s of %(total)s stage done"]
    code = LANGUAGES[lang][0]
    said = {}
    for total, form in forms.items():
        op = Scripted(owner_id=1, language=code)
        said[total] = summary(render_regions(op, stages_view(total, 1), ["stages"]))
        assert said[total] == entry.msgstr[form] % {"done": 1, "total": total}
    # Three different words come out, not just three different numbers.
    assert len({re.sub(r"\d+", "#", said[n]) for n in (1, 2, 5)}) == 3, said


@pytest.mark.django_db
def test_the_live_frames_are_in_the_language_the_operation_started_in(
    user: Any, liveops_run: Any
) -> None:
    op = Scripted.objects.create(owner=user, language="de")
    with translation.override("fr"):
        record = liveops_run(op)
    with translation.override("de"):
        done = _("The operation finished successfully.")
        stages = ngettext(
            "%(done)s of %(total)s stage done", "%(done)s of %(total)s stages done", 2
        ) % {"done": 0, "total": 2}
    assert done != "The operation finished successfully."
    assert done in record.text("result")
    assert stages in record.text("stages")


def test_the_container_and_its_connection_texts_are_in_the_operation_language() -> None:
    op = Scripted(owner_id=1, language="pl")
    html = render_container(
        op, op.to_view(), staff=False, ws_path="/ws/", log_max=10, cancel_url="/cancel/"
    )
    with translation.override("pl"):
        cancel, connecting = _("Cancel"), _("Connecting…")
    (section,) = parse(html)
    assert cancel != "Cancel"
    assert [b.text_content() for b in section.iter("button")] == [cancel]
    assert connecting in section.get("data-liveop-texts", "")


@pytest.mark.parametrize("language_code", ["en", "de"])
def test_an_operation_without_a_language_uses_the_site_language(
    settings: Any, language_code: str
) -> None:
    settings.LANGUAGE_CODE = language_code
    op = Scripted(owner_id=1, language="")
    with translation.override("fr"):  # what a request thread may have active
        html = render_regions(op, StateView(phase=Phase.CANCELLED), ["result"])
    with translation.override(language_code):
        expected = _("The operation was cancelled.")
    (region,) = parse(html)
    assert " ".join(region.text_content().split()) == expected


def test_an_unknown_language_falls_back_without_failing() -> None:
    op = Scripted(owner_id=1, language="xx")
    html = render_regions(op, StateView(phase=Phase.CANCELLED), ["status", "result"])
    texts = [" ".join(el.text_content().split()) for el in parse(html)]
    assert texts == ["Cancelled", "The operation was cancelled."]  # LANGUAGE_CODE is "en"


@pytest.mark.django_db
@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("end", ["lost", "interrupted", "never started"])
def test_an_end_decided_outside_the_run_is_stored_in_the_operations_language(
    user: Any, code: str, end: str
) -> None:
    from liveops import lifecycle

    op = Scripted.objects.create(owner=user, language=code)
    if end == "never started":
        message = lifecycle.NEVER_STARTED_MESSAGE
        (ended,) = lifecycle.end_unstarted(Scripted, [op.pk], message)
    else:
        Scripted.objects.filter(pk=op.pk).update(started_on=timezone.now())
        message = lifecycle.LOST_MESSAGE if end == "lost" else lifecycle.INTERRUPTED_MESSAGE
        (ended,) = lifecycle.end_as_interrupted(Scripted, [op.pk], message, stale_only=False)
    with translation.override(code):
        translated = _(message)
    assert translated != message, f"{message!r} is not translated into {code}"
    assert ended.error_message == translated
    html = render_regions(ended, ended.to_view(), ["result"])
    assert translated in " ".join(parse(html)[0].text_content().split())
