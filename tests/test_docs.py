"""The docs the README promises exist, and the runbook covers the operations the team asked for."""

from __future__ import annotations

import re

import pytest

from components.grafana.alerts import runbook_anchors
from tests.harness import project_path


def test_runbook_has_the_operations_sections():
    operations = project_path("docs", "runbook.md").read_text().split("\n## Operations\n")[1]
    assert {
        "no-data-in-a-dashboard",
        "collector-refusing-data",
        "a-store-out-of-disk",
        "grafana-password-rotation",
        "upgrading-a-pinned-version",
        "restoring-from-s3",
    } <= runbook_anchors(operations)


def test_readme_links_the_workflows_the_policy_pack_and_the_docs():
    readme = project_path("README.md").read_text()
    for target in ("docs/architecture.md", "docs/runbook.md", "policy/", ".github/workflows/", ".github/workflows/pull-request.yml",
                   ".github/workflows/deploy.yml", ".github/workflows/destroy.yml"):
        assert f"]({target})" in readme, target
        assert project_path(target).exists(), target


def test_architecture_names_files_that_exist():
    text = project_path("docs", "architecture.md").read_text()
    for path in ("components/plan.py", "components/platforms/spec.py", "components/platforms/facts.py", "components/platforms/docker.py",
                 "components/stack.py", "components/render.py", "components/services/collector_tiers.py", "components/grafana/content.py",
                 "configs/collector-builder.yaml", "components/grafana/alerts.py", "components/migrations.py"):
        assert path in text, path
    named = set(re.findall(r"`((?:components|configs|tests|scripts|policy)/[\w./-]+\.(?:py|yaml|json))`", text))
    assert len(named) > 20
    for path in named:
        assert project_path(path).exists(), path


# --- links ---------------------------------------------------------------------------------

_FENCE = re.compile(r"^(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a bash block is no heading, a `](x)` there no link)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lowercase, each space a dash."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        anchor = github_anchor(match.group(2))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def relative_links(text: str) -> list[str]:
    return [target for line in prose_lines(text) for target in _LINK.findall(line)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]  # http:, https:, mailto: are not files here


DOCUMENTS = ["README.md", *(f"docs/{p.name}" for p in sorted(project_path("docs").glob("*.md"))),
             *(f"benchmarks/{p.name}" for p in sorted(project_path("benchmarks").glob("*.md")))]


def test_github_anchor_follows_githubs_rules():
    assert github_anchor("Delivery: pull requests, deploys, teardown") == "delivery-pull-requests-deploys-teardown"
    assert github_anchor("What scripts/stack.sh does") == "what-scriptsstacksh-does"
    assert github_anchor("CPU, memory, network and disk: what is seen where") == "cpu-memory-network-and-disk-what-is-seen-where"
    assert github_anchor("Grafana's `/metrics` password") == "grafanas-metrics-password"
    assert anchors("# A\n```\n# not a heading\n```\n## A\n") == {"a", "a-1"}


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_resolves_to_a_file_and_a_heading(document):
    source = project_path(document)
    text = source.read_text()
    for target in relative_links(text):
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        assert linked.exists(), f"{document}: {target} (no such file)"
        if anchor:
            assert linked.is_file() and linked.suffix == ".md", f"{document}: {target} (an anchor into a file that is not Markdown)"
            assert anchor in anchors(linked.read_text()), f"{document}: {target} (no such heading in {path or document})"


def test_the_readme_links_the_docs_and_the_benchmarks_it_moved_there():
    readme = project_path("README.md").read_text()
    assert len(relative_links(readme)) > 30  # the parser finds the README's links at all
    for target in ("docs/production.md", "docs/security.md", "docs/operations.md", "docs/testing.md", "benchmarks/overload.md",
                   *(f"benchmarks/{p.name}" for p in sorted(project_path("benchmarks").glob("*.md")))):
        assert any(link.split("#")[0] == target for link in relative_links(readme)), target
