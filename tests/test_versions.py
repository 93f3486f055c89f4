"""Every version lives in one place: each copy elsewhere is derived from its pin or equal to it
(scripts/versions.py holds the checks), and each check catches a wrong copy fed to it."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Callable

import pytest

from tests.harness import project_path

spec = importlib.util.spec_from_file_location("scripts_versions", project_path("scripts", "versions.py"))
versions = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = versions  # dataclasses look their module up there
spec.loader.exec_module(versions)

SOURCES = versions.read_sources()


@pytest.mark.parametrize("check", versions.CHECKS, ids=lambda c: c.__name__)
def test_every_copy_agrees_with_its_pin(check):
    problems = check(SOURCES)
    assert problems == [], "\n".join(problems)


def test_the_pulumi_cli_is_derived_from_the_sdk_pin():
    spec = importlib.util.spec_from_file_location("stack_script", project_path("scripts", "stack.py"))
    stack_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stack_script)
    sdk = versions.pulumi_sdk(SOURCES)
    assert sdk == stack_script.PULUMI_VERSION, "scripts/stack.py derives PULUMI_VERSION from requirements-docker.txt"


def test_the_prometheus_module_version_follows_prometheus_scheme():
    assert [versions.prometheus_module_version(tag) for tag in ("v3.14.0", "v3.5.2", "3.0.1")] == ["v0.314.0", "v0.305.2", "v0.300.1"]


def test_the_readme_lists_every_pin():
    table = versions.readme_table(SOURCES.readme)
    for key, reference in versions.image_defaults(SOURCES.pulumi_yaml).items():
        assert f"| `{key}` | `{reference}` | `Pulumi.yaml` |" in table
    for name in (*versions.SDKS, "Pulumi CLI", "actionlint", "collector built for the tests", "Prometheus and promtool"):
        assert name in table, name


def replace_in(field: str, old: str, new: str) -> Callable[[object], object]:
    """A copy of the sources with one place wrong: `old` replaced once in that place's text."""

    def wrong(sources):
        value = getattr(sources, field)
        if isinstance(value, dict):
            name = next(n for n, text in value.items() if old in text)
            return dataclasses.replace(sources, **{field: {**value, name: value[name].replace(old, new, 1)}})
        assert old in value, (field, old)
        return dataclasses.replace(sources, **{field: value.replace(old, new, 1)})

    return wrong


def grafana_confirmed_at(tag: str) -> Callable[[object], object]:
    return lambda sources: dataclasses.replace(sources, arm64_images={**sources.arm64_images, "grafana/grafana": (tag,)})


# Each: a wrong copy, the check that must catch it, and what its message must name (both places).
WRONG_COPIES = [
    ("readme-config-row", replace_in("readme", "| `grafanaImage` | `grafana/grafana:", "| `grafanaImage` | `grafana/grafana:0."),
     versions.check_readme_image_rows, ["Pulumi.yaml's grafanaImage", "README's configuration table"]),
    ("arm64-list", grafana_confirmed_at("0.0.1"), versions.check_arm64_images,
     ["Pulumi.yaml's grafanaImage", "is not in ARM64_IMAGES", "confirms grafana/grafana:0.0.1, which no *Image default", "docs/arm64-images.md"]),
    ("arm64-doc", replace_in("arm64_doc", "| `grafana/grafana` | `", "| `grafana/grafana` | `0."), versions.check_arm64_images,
     ["docs/arm64-images.md lists grafana/grafana:0.", "ARM64_IMAGES does not confirm it"]),
    ("builder-dist", replace_in("builder_manifest", "  version: ", "  version: 0."), versions.check_collector_builder,
     ["dist.version is 0.", "Pulumi.yaml's collectorImage tag"]),
    ("builder-component", replace_in("builder_manifest", "filterprocessor v", "filterprocessor v0.0"), versions.check_collector_builder,
     ["filterprocessor v0.0", "Pulumi.yaml's collectorImage tag"]),
    ("builder-provider", replace_in("builder_manifest", "yamlprovider v1.", "yamlprovider v1.0"), versions.check_collector_builder,
     ["confmap providers are at"]),
    ("prometheus-build", lambda s: dataclasses.replace(s, prometheus_build="3.13.0 v0.313.0"), versions.check_prometheus_build,
     ["scripts/build-prometheus.sh builds 3.13.0", "Pulumi.yaml's prometheusImage tag"]),
    ("prometheus-module", lambda s: dataclasses.replace(s, prometheus_build=s.prometheus_build + "1"), versions.check_prometheus_build,
     ["builds the Go module", "prometheusImage"]),
    ("workflow-cli", replace_in("workflows", "pulumi-version: ", "pulumi-version: 0."), versions.check_pulumi_cli,
     ["installs the Pulumi CLI 0.", "requirements-docker.txt pins the pulumi SDK"]),
    ("constraints", replace_in("constraints", "pulumi_aws==", "pulumi_aws==0."), versions.check_constraints,
     ["requirements.txt pins pulumi-aws==", "constraints.txt has pulumi-aws==0."]),
    ("readme-table", replace_in("readme", "| `pulumi-random` SDK | `", "| `pulumi-random` SDK | `0."), versions.check_readme_table,
     ["README's table of pinned versions differs"]),
]


@pytest.mark.parametrize(("wrong", "check", "named"), [c[1:] for c in WRONG_COPIES], ids=[c[0] for c in WRONG_COPIES])
def test_a_wrong_copy_is_reported_naming_both_places(wrong, check, named):
    assert check(SOURCES) == []
    problems = "\n".join(check(wrong(SOURCES)))
    for fragment in named:
        assert fragment in problems, problems


def test_a_pin_moved_alone_is_reported_by_every_copy_it_left_behind():
    moved = replace_in("pulumi_yaml", "default: grafana/grafana:", "default: grafana/grafana:0.")(SOURCES)
    problems = "\n".join(versions.disagreements(moved))
    assert "README's configuration table" in problems
    assert "is not in ARM64_IMAGES" in problems
    assert "README's table of pinned versions differs" in problems
