"""Stack configuration as the Pulumi CLI hands it to the program, read without the CLI.

The CLI merges the defaults declared in Pulumi.yaml with Pulumi.<stack>.yaml and passes every value
as a string (arrays and objects JSON-encoded). The tests and the offline render command need the
same view without a CLI, so this module reproduces that merge for plain (non-secret) values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.yamltext import load_yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    return str(_read_yaml(project_dir / "Pulumi.yaml")["name"])


def stack_names(project_dir: Path = PROJECT_DIR) -> list[str]:
    """Every stack with a committed stack file."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def declared_keys(project_dir: Path = PROJECT_DIR) -> set[str]:
    """The project's own config keys, as Pulumi.yaml declares them (provider keys such as aws:region
    belong to their providers)."""
    return {key for key in (_read_yaml(project_dir / "Pulumi.yaml").get("config") or {}) if ":" not in key}


def load_stack_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """Return {"<project>:<key>": value-as-string} for a stack, defaults included."""
    project = _read_yaml(project_dir / "Pulumi.yaml")
    name = project["name"]
    merged: dict[str, Any] = {}
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl:
            merged[_qualify(name, key)] = decl["default"]
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise FileNotFoundError(f"no stack file {stack_file.name}; stacks here: {stack_names(project_dir)}")
    for key, value in ((_read_yaml(stack_file) or {}).get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue  # encrypted: only the CLI can read it
        merged[_qualify(name, key)] = value
    return {key: _as_config_string(value) for key, value in merged.items()}


def _qualify(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def _as_config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def _read_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return load_yaml(handle.read()) or {}
