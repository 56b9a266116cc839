"""A Python model of how liveops.js applies frames, on an lxml.html tree.

It follows docs/protocol.md, "Applying a region element", rules 1-6, so tests can
show without a browser that a page built by applying every live tick equals the
page a snapshot renders.
"""

from __future__ import annotations

import copy
import json
import re

import lxml.html
from lxml import etree
from lxml.html import HtmlElement

from liveops._protocol import ATTRIBUTES as A

__all__ = ["BOOKKEEPING", "Page", "canonical", "log_max", "parse", "rank"]

#: Attributes that differ between a region built by ticks and the same region
#: rendered whole, by design: a region keeps the version and the phase it was
#: last rendered at (docs/protocol.md, "Regions").
BOOKKEEPING: tuple[str, ...] = (A["version"], A["state"])

_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse(html: str) -> HtmlElement:
    """Parse HTML fragments into the children of one wrapping <div>."""
    return lxml.html.fragment_fromstring(html, create_parent="div")


def _integer(value: str | None) -> int | None:
    """Return the whole number ``value`` spells (as liveops.js reads one), or None."""
    return int(value) if value is not None and _INTEGER.fullmatch(value) else None


def _int(el: HtmlElement, name: str) -> int:
    """Versions, attempts and seqs: missing or non-numeric ("", "zz", "2x") counts as 0."""
    value = _integer(el.get(name))
    return 0 if value is None else value


def _terminal(el: HtmlElement) -> bool:
    return el.get(A["terminal"]) is not None


def rank(el: HtmlElement) -> tuple[int, bool, int]:
    """Return (attempt, terminal, version), how the client orders elements of a region."""
    return _int(el, A["attempt"]), _terminal(el), _int(el, A["version"])


def log_max(el: HtmlElement) -> int | None:
    """Return how many lines the log keeps, or None: no limit unless a whole number >= 0."""
    value = _integer(el.get(A["log_max"]))
    return value if value is not None and value >= 0 else None


def canonical(element: HtmlElement | str, ignore: tuple[str, ...] = ()) -> str:
    """Return an element's outerHTML with sorted attributes and ``ignore`` left out."""
    el = copy.deepcopy(element) if isinstance(element, HtmlElement) else parse(element)[0]
    el.tail = None
    for name in ignore:
        el.attrib.pop(name, None)
    for node in el.iter(etree.Element):
        items = sorted(node.attrib.items())
        node.attrib.clear()
        node.attrib.update(items)
    return lxml.html.tostring(el, encoding="unicode")


def _lines(log: HtmlElement) -> list[HtmlElement]:
    return [child for child in log if child.tag == "li"]


class Page:
    """A page holding live regions; frames are applied to it as the client would."""

    def __init__(self, root: HtmlElement) -> None:
        self.root = root

    @classmethod
    def from_html(cls, html: str) -> Page:
        """Build a page from a rendered container, or from bare region elements."""
        return cls(parse(html))

    def find(self, element_id: str) -> HtmlElement | None:
        """Return the element with ``element_id``, or None."""
        found = self.root.xpath(".//*[@id=$id]", id=element_id)
        return found[0] if found else None

    def apply_frame(self, text: str) -> list[str]:
        """Apply one JSON frame; return the ids of the regions it changed."""
        html = json.loads(text).get("liveop_html")
        return self.apply_html(html) if isinstance(html, str) else []

    def apply_html(self, html: str) -> list[str]:
        """Apply each top-level element of ``html`` by its id; return the ids applied."""
        applied = []
        for new in list(parse(html)):
            old = self.find(new.get("id") or "")
            # Rule 6; the container and the connection region are never replaced.
            if old is None or old.get(A["op"]) is not None:
                continue
            if "liveops-connection" in (old.get("class") or "").split():
                continue
            if self._apply(old, new):
                applied.append(new.get("id"))
        return applied

    def _apply(self, old: HtmlElement, new: HtmlElement) -> bool:
        """Apply ``new`` over ``old``; return whether the page changed."""
        old_attempt, new_attempt = (
            _int(old, A["attempt"]),
            _int(new, A["attempt"]),
        )
        if new_attempt < old_attempt:  # rule 1
            return False
        if new_attempt == old_attempt:
            if _terminal(old) != _terminal(new):  # rule 2: the end outranks any live state
                if _terminal(old):
                    return False
            elif _int(new, A["version"]) < _int(old, A["version"]):  # rule 3
                return False
        if new.get("hx-swap-oob") == "beforeend":  # rule 4
            before = canonical(old)
            self._append(old, new, newer=new_attempt > old_attempt)
            return canonical(old) != before
        if canonical(old) == canonical(new):
            return False  # rule 6: identical (as the DOM's isEqualNode), not applied again
        new.tail = old.tail  # rule 5
        old.getparent().replace(old, new)
        return True

    def _append(self, old: HtmlElement, new: HtmlElement, *, newer: bool) -> None:
        if newer:
            for child in list(old):
                old.remove(child)
            old.text = None
        for line in _lines(new):
            line.tail = None
            # Only an id says two lines are the same line; one without is always new.
            existing = [
                li for li in _lines(old) if line.get("id") and li.get("id") == line.get("id")
            ]
            if existing:
                old.replace(existing[0], line)
                continue
            seq = _int(line, A["seq"])
            later = [li for li in _lines(old) if _int(li, A["seq"]) > seq]
            if later:
                later[0].addprevious(line)
            else:
                old.append(line)
        keep = log_max(old)
        if keep is not None:
            lines = _lines(old)
            for li in lines[: max(0, len(lines) - keep)]:
                old.remove(li)
        version = _int(new, A["version"])
        if not newer:
            version = max(version, _int(old, A["version"]))
        old.set(A["version"], str(version))
        old.set(A["attempt"], str(_int(new, A["attempt"])))
        if _terminal(new):
            old.set(A["terminal"], "")
        else:
            old.attrib.pop(A["terminal"], None)

    def region(self, element_id: str, ignore: tuple[str, ...] = BOOKKEEPING) -> str:
        """Return the region's outerHTML, canonical: sorted attributes, ``ignore`` dropped."""
        found = self.find(element_id)
        if found is None:
            raise KeyError(element_id)
        return canonical(found, ignore)
