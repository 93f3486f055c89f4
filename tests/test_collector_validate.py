"""The rendered collector config, checked by the real collector built at the pinned version."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from components.services.collector import BEARER_TOKEN_FILE_ENV, TIERS
from components.stackconfig import stack_names
from components.yamltext import to_yaml
from tests.plans import collector_config, deployed_collector_config
from tests.test_settings import settings_for

KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")


@pytest.fixture(scope="module")
def built_components(otelcol) -> dict[str, set[str]]:
    listing = yaml.safe_load(subprocess.run([otelcol, "components"], capture_output=True, text=True, check=True).stdout)
    return {kind: {entry["name"] for entry in listing.get(kind) or []} for kind in KINDS}


def validate(otelcol: str, config: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(to_yaml(config))
    # The platform writes the ingest token to a file and names it in this variable.
    token = tmp_path / "otlp_bearer_token"
    token.write_text("validate-only-token")
    env = {**os.environ, BEARER_TOKEN_FILE_ENV: str(token)}
    # sigv4auth looks for credentials while it validates; the task role provides them on ECS.
    env |= {"AWS_ACCESS_KEY_ID": "AKIAVALIDATEONLY0000", "AWS_SECRET_ACCESS_KEY": "validate-only", "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run([otelcol, "validate", f"--config={path}"], capture_output=True, text=True, env=env)


# Every stack file as it is, and prod with the managed metrics store (sigv4auth), a supported option.
DEPLOYMENTS = [(stack, {}) for stack in stack_names()] + [("prod", {"metricsBackend": "amp"})]
DEPLOYMENT_IDS = [stack + "".join(f"-{k}={v}" for k, v in overrides.items()) for stack, overrides in DEPLOYMENTS]


def rendered(stack: str, tier: str, **overrides: str) -> dict:
    """As deployed: with the managed metrics store where the settings use one."""
    return deployed_collector_config(settings_for(stack, **overrides), tier)


def component_types(config: dict, kind: str) -> set[str]:
    return {name.split("/", 1)[0] for name in config.get(kind) or {}}


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize(("stack", "overrides"), DEPLOYMENTS, ids=DEPLOYMENT_IDS)
def test_rendered_config_passes_otelcol_validate(stack, overrides, tier, otelcol, tmp_path):
    result = validate(otelcol, rendered(stack, tier, **overrides), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize(("stack", "overrides"), DEPLOYMENTS, ids=DEPLOYMENT_IDS)
def test_rendered_config_uses_only_components_the_build_has(stack, overrides, tier, built_components):
    config = rendered(stack, tier, **overrides)
    for kind in KINDS:
        missing = component_types(config, kind) - built_components[kind]
        assert not missing, f"{kind} not in configs/collector-builder.yaml: {sorted(missing)}"


def test_the_build_has_exactly_the_components_our_stacks_use(built_components):
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for stack, overrides in DEPLOYMENTS:
        for tier in TIERS:
            config = rendered(stack, tier, **overrides)
            for kind in KINDS:
                used[kind] |= component_types(config, kind)
    assert used == built_components


def test_manifest_version_matches_the_pinned_image(otelcol):
    manifest = yaml.safe_load(Path("configs/collector-builder.yaml").read_text())
    image_tag = settings_for("dev").image("collector").rsplit(":", 1)[1]
    assert manifest["dist"]["version"] == image_tag
    version = subprocess.run([otelcol, "--version"], capture_output=True, text=True, check=True).stdout
    assert image_tag in version


def test_validate_rejects_an_unknown_key(otelcol, tmp_path):
    config = collector_config(settings_for("dev"))
    config["exporters"]["otlp_grpc/tempo"]["endpiont"] = "tempo:4317"
    result = validate(otelcol, config, tmp_path)
    assert result.returncode != 0
    assert "endpiont" in result.stdout + result.stderr


def test_validate_rejects_a_component_the_build_lacks(otelcol, tmp_path):
    config = collector_config(settings_for("dev"))
    config["processors"]["groupbytrace"] = {}
    config["service"]["pipelines"]["traces"]["processors"].insert(1, "groupbytrace")
    result = validate(otelcol, config, tmp_path)
    assert result.returncode != 0
    assert "groupbytrace" in result.stdout + result.stderr


def test_validate_rejects_a_pipeline_naming_an_undefined_exporter(otelcol, tmp_path):
    config = collector_config(settings_for("dev"))
    config["service"]["pipelines"]["logs"]["exporters"].append("otlp_http/missing")
    result = validate(otelcol, config, tmp_path)
    assert result.returncode != 0
