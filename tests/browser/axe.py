"""axe-core in the browser tests: inject it into a Playwright page, run it, report violations.

axe-core comes from the npm registry, pinned by tests/js/package-lock.json (``make test``
installs it with ``npm ci --prefix tests/js``).
"""

from __future__ import annotations

from typing import Any

from tests.browser.support import ROOT
from tests.conftest import need

AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"

#: Both schemes liveops.css and the demo's stylesheet draw; every page is checked in each.
SCHEMES = ("light", "dark")

# Every rule axe runs by default (WCAG 2.0-2.2 A/AA and best practices, color-contrast
# among them), only violations: "incomplete" results are axe's "could not tell".
RUN = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({target: n.target, html: n.html, summary: n.failureSummary})),
  }));
}"""


def violations(page: Any) -> list[dict[str, Any]]:
    """Return axe's violations on ``page`` as it is now (axe is injected once per document)."""
    need(AXE.is_file(), f"axe-core is not installed at {AXE} (run npm ci --prefix tests/js)")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(RUN)
    return found


def describe(found: list[dict[str, Any]]) -> str:
    """Return violations readably: rule, impact and help, then each node's target and HTML."""
    lines = []
    for v in found:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"]:
            target = " ".join(" >> ".join(t) if isinstance(t, list) else t for t in node["target"])
            html = node["html"] if len(node["html"]) <= 300 else node["html"][:297] + "..."
            lines.append(f"    at {target}\n      {html}")
            summary = (node.get("summary") or "").replace("\n", "\n        ")
            if summary:
                lines.append(f"      {summary}")
    return "\n".join(lines)


def assert_accessible(page: Any, what: str, schemes: tuple[str, ...] = SCHEMES) -> None:
    """Fail unless axe finds no violation on ``page`` in each colour scheme of ``schemes``.

    The page is left in the last scheme checked.
    """
    report = []
    for scheme in schemes:
        page.emulate_media(color_scheme=scheme)
        found = violations(page)
        if found:
            report.append(f"{what}, {scheme} scheme ({page.url}):\n{describe(found)}")
    assert not report, "axe-core found accessibility violations:\n" + "\n\n".join(report)
