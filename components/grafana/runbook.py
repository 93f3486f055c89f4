"""The runbook (docs/runbook.md) as a Grafana dashboard, one text panel per section, and the link
each alert carries to its section: absolute, so it works from Slack, PagerDuty and e-mail.

By default the links open the section's panel in this Grafana (`/d/<uid>?viewPanel=<id>`, the
panel link form Grafana documents), which everyone an alert reaches can open; with
runbookBaseUrl they point at the runbook where the team keeps it (`<base>#<anchor>`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

RUNBOOK_UID = "runbook"
RUNBOOK_TITLE = "Runbook"
_HEADING = re.compile(r"^(#{2,3})\s+(.+?)\s*$", re.MULTILINE)
# A text panel's height per line of markdown, within Grafana's 24-column grid (rows of 30 px).
_LINES_PER_ROW = 1.6


def anchor(heading: str) -> str:
    """The anchor GitHub derives from a heading (lowercase, punctuation dropped, spaces to '-')."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@dataclass(frozen=True)
class Section:
    panel_id: int
    anchor: str
    markdown: str


def runbook_sections(text: str) -> list[Section]:
    """A section per level-2 or level-3 heading, from the heading to the next one."""
    starts = list(_HEADING.finditer(text))
    sections = []
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        sections.append(Section(panel_id=index + 1, anchor=anchor(match.group(2)), markdown=text[match.start() : end].strip()))
    return sections


def runbook_dashboard(text: str) -> dict[str, Any]:
    panels, y = [], 0
    for section in runbook_sections(text):
        height = max(3, round(section.markdown.count("\n") / _LINES_PER_ROW) + 2)
        panels.append(
            {
                "id": section.panel_id,
                "type": "text",
                "title": "",
                "gridPos": {"x": 0, "y": y, "w": 24, "h": height},
                "options": {"mode": "markdown", "content": section.markdown},
            }
        )
        y += height
    return {"uid": RUNBOOK_UID, "title": RUNBOOK_TITLE, "tags": ["runbook"], "editable": False, "schemaVersion": 39, "panels": panels}


def runbook_links(text: str, grafana_root_url: str, base_url: str = "") -> dict[str, str]:
    """Anchor -> the absolute link an alert about it carries."""
    if base_url:
        return {s.anchor: f"{base_url}#{s.anchor}" for s in runbook_sections(text)}
    return {s.anchor: f"{grafana_root_url.rstrip('/')}/d/{RUNBOOK_UID}?viewPanel={s.panel_id}" for s in runbook_sections(text)}
