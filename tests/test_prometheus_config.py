"""The rendered Prometheus config, checked by promtool at the pinned Prometheus version."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.stackconfig import stack_names
from components.yamltext import to_yaml
from tests.plans import prometheus_config
from tests.test_settings import settings_for


def check(promtool: str, config: dict, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "prometheus.yml"
    path.write_text(to_yaml(config))
    return subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)


def test_promtool_is_the_pinned_release(promtool_bin):
    tag = settings_for("dev").image("prometheus").rsplit(":v", 1)[1]
    version = subprocess.run([promtool_bin, "--version"], capture_output=True, text=True, check=True).stdout
    assert f"version {tag}" in version


@pytest.mark.parametrize("stack", stack_names())
def test_rendered_config_passes_promtool_check_config(stack, promtool_bin, tmp_path):
    result = check(promtool_bin, prometheus_config(settings_for(stack)), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_config_catches_an_unknown_key(promtool_bin, tmp_path):
    config = prometheus_config(settings_for("dev"))
    config["storage"]["tsdb"]["retention"]["tiem"] = "1d"
    result = check(promtool_bin, config, tmp_path)
    assert result.returncode != 0
    assert "tiem" in result.stdout + result.stderr


def test_retention_is_by_time_and_by_size(promtool_bin, tmp_path):
    config = prometheus_config(settings_for("dev", prometheusRetentionSize="75%"))
    assert config["storage"]["tsdb"]["retention"] == {"time": "168h", "size": "15360MB"}
    assert check(promtool_bin, config, tmp_path).returncode == 0
    config["storage"]["tsdb"]["retention"]["size"] = "-1MB"
    assert check(promtool_bin, config, tmp_path).returncode != 0
