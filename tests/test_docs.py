"""The docs the README promises exist, and the runbook covers the operations the team asked for."""

from __future__ import annotations

import re

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
