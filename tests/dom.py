"""A Python model of how liveops.js applies frames, on an lxml.html tree.

It follows docs/protocol.md, "Applying a region element", rules 1-6, so tests can
show without a browser that a page built by applying every live tick equals the
page a snapshot renders.
"""

from __future__ import annotations

import copy
import json

import lxml.html
from lxml import etree
from lxml.html import HtmlElement

__all__ = ["BOOKKEEPING", "Page", "parse"]

#: Attributes that differ between a region built by ticks and the same region
#: rendered whole, by design: a region keeps the version and the phase it was
#: last rendered at (docs/protocol.md, "Regions").
BOOKKEEPING: tuple[str, ...] = ("data-liveop-v", "data-liveop-state")


def parse(html: str) -> HtmlElement:
    """Parse HTML fragments into the children of one wrapping <div>."""
    return lxml.html.fragment_fromstring(html, create_parent="div")


def _int(el: HtmlElement, name: str) -> int:
    try:
        return int(el.get(name, ""))
    except ValueError:
        return 0


def _terminal(el: HtmlElement) -> bool:
    return el.get("data-liveop-terminal") is not None


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
            if old is None or old.get("data-liveop") is not None:
                continue
            if "liveops-connection" in (old.get("class") or "").split():
                continue
            if self._apply(old, new):
                applied.append(new.get("id"))
        return applied

    def _apply(self, old: HtmlElement, new: HtmlElement) -> bool:
        """Apply ``new`` over ``old``; return whether the page changed."""
        old_attempt, new_attempt = (
            _int(old, "data-liveop-attempt"),
            _int(new, "data-liveop-attempt"),
        )
        if new_attempt < old_attempt:  # rule 1
            return False
        if new_attempt == old_attempt:
            if _terminal(old) != _terminal(new):  # rule 2: the end outranks any live state
                if _terminal(old):
                    return False
            elif _int(new, "data-liveop-v") < _int(old, "data-liveop-v"):  # rule 3
                return False
        if new.get("hx-swap-oob") == "beforeend":  # rule 4
            before = etree.tostring(old, with_tail=False)
            self._append(old, new, newer=new_attempt > old_attempt)
            return etree.tostring(old, with_tail=False) != before
        if etree.tostring(old, with_tail=False) == etree.tostring(new, with_tail=False):
            return False  # rule 6: identical, not applied again
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
            existing = [li for li in _lines(old) if li.get("id") == line.get("id")]
            if existing:
                old.replace(existing[0], line)
                continue
            seq = _int(line, "data-liveop-seq")
            later = [li for li in _lines(old) if _int(li, "data-liveop-seq") > seq]
            if later:
                later[0].addprevious(line)
            else:
                old.append(line)
        if old.get("data-liveop-log-max") is not None:
            lines = _lines(old)
            for li in lines[: max(0, len(lines) - _int(old, "data-liveop-log-max"))]:
                old.remove(li)
        version = _int(new, "data-liveop-v")
        if not newer:
            version = max(version, _int(old, "data-liveop-v"))
        old.set("data-liveop-v", str(version))
        old.set("data-liveop-attempt", str(_int(new, "data-liveop-attempt")))
        if _terminal(new):
            old.set("data-liveop-terminal", "")
        else:
            old.attrib.pop("data-liveop-terminal", None)

    def region(self, element_id: str, ignore: tuple[str, ...] = BOOKKEEPING) -> str:
        """Return the region's outerHTML, canonical: sorted attributes, ``ignore`` dropped."""
        found = self.find(element_id)
        if found is None:
            raise KeyError(element_id)
        el = copy.deepcopy(found)
        el.tail = None
        for name in ignore:
            el.attrib.pop(name, None)
        for node in el.iter(etree.Element):
            items = sorted(node.attrib.items())
            node.attrib.clear()
            node.attrib.update(items)
        return lxml.html.tostring(el, encoding="unicode")
