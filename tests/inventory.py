"""What a mocked program run registers, as a comparable inventory, and the URNs aliases resolve to.

    python -m tests.inventory --inputs   # rewrites tests/fixtures/aws-inventory.json

URNS_FIXTURE holds every AWS resource's URN before the AWS platform became a package of small
components (written once, from commit 203b184); INVENTORY_FIXTURE the type, name and inputs of each,
as last accepted. tests/test_aws_inventory.py compares every run with both.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

from tests.harness import ProgramRun, Registered, project_path, run_program, unwrap

INVENTORY_FIXTURE = "tests/fixtures/aws-inventory.json"
URNS_FIXTURE = "tests/fixtures/aws-urns-before-split.json"
# The prod stack file as it is (its default), and the shapes recorded before the split: prod scaled
# out with the managed metrics store and tasks in private subnets, the same with an existing VPC,
# and with the self-hosted Prometheus (task roles then come into being in other places).
_SCALED_OUT = {"collectorMaxTasks": "4", "taskSubnets": "private"}
VARIANTS: dict[str, dict[str, Optional[str]]] = {
    "default": {},
    "prod": {**_SCALED_OUT, "metricsBackend": "amp"},
    "existing-vpc": {
        **_SCALED_OUT,
        "metricsBackend": "amp",
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "publicSubnetIds": '["subnet-0a0000000000000a1", "subnet-0a0000000000000a2"]',
        "privateSubnetIds": '["subnet-0b0000000000000b1", "subnet-0b0000000000000b2"]',
    },
    "self-hosted-prometheus": {**_SCALED_OUT, "metricsBackend": "prometheus"},
}
# The default has no URNs of its own from before the split: its resources are those of prod with
# the self-hosted Prometheus, fewer (no NAT gateway, no private subnets), under the same names.
URNS_RECORDED_AS = {"default": "self-hosted-prometheus"}


def entry(resource: Registered) -> dict[str, Any]:
    return {"type": resource.type, "name": resource.name, "inputs": unwrap(resource.inputs)}


def custom_resources(run: ProgramRun) -> list[Registered]:
    """Resources a provider creates (components only group them; their URNs hold no state)."""
    return [r for r in run.resources if (r.provider is not None and r.provider != "") or r.type.startswith(("aws:", "random:"))]


def inventory(run: ProgramRun) -> list[dict[str, Any]]:
    return sorted((entry(r) for r in custom_resources(run)), key=lambda e: (e["type"], e["name"]))


class EngineUrns:
    """URNs as the Pulumi engine forms them: urn:pulumi:<stack>::<project>::<qualified type>::<name>,
    the qualified type being every ancestor's type but the stack's, joined by '$'. (The mock
    monitor puts only the parent's type before a resource's, so nested components need this.)"""

    def __init__(self, run: ProgramRun):
        self._by_urn = {r.urn: r for r in run.resources if r.urn}

    def qualified_type(self, mock_urn: str) -> str:
        """'' for the stack (or no parent), else the resource's qualified type."""
        resource = self._by_urn.get(mock_urn)
        if resource is None:
            # The stack itself, or a URN the program computed engine-style (pulumi.create_urn).
            qualified = mock_urn.split("::")[2] if mock_urn.count("::") >= 3 else ""
            return "" if qualified.startswith("pulumi:pulumi:Stack") else qualified
        parent = self.qualified_type(resource.parent_urn)
        return f"{parent}${resource.type}" if parent else resource.type

    def of(self, resource: Registered) -> str:
        return _urn(resource.urn, self.qualified_type(resource.urn), resource.name)

    def aliases(self, resource: Registered) -> set[str]:
        """The URNs the engine reads the resource's alias specs as (an empty name or type is the
        resource's own; a spec with no parent URN is a root resource)."""
        urns = set()
        for alias in resource.options.get("aliases", []):
            name, type_ = alias.get("name") or resource.name, alias.get("type") or resource.type
            parent = "" if alias.get("noParent") else self.qualified_type(alias.get("parentUrn") or "")
            urns.add(_urn(resource.urn, f"{parent}${type_}" if parent else type_, name))
        return urns


def _urn(mock_urn: str, qualified_type: str, name: str) -> str:
    stack_project = "::".join(mock_urn.split("::")[:2])
    return f"{stack_project}::{qualified_type}::{name}"


def deployed_urns(run: ProgramRun) -> dict[str, str]:
    """'type::name' -> engine URN of every custom resource."""
    urns = EngineUrns(run)
    return {f"{r.type}::{r.name}": urns.of(r) for r in custom_resources(run)}


def main() -> None:
    if sys.argv[1:] not in (["--inputs"], ["--urns"]):
        sys.exit("usage: python -m tests.inventory --inputs   (rewrites the accepted inputs of every AWS resource)")
    fixture, describe = (INVENTORY_FIXTURE, inventory) if sys.argv[1] == "--inputs" else (URNS_FIXTURE, deployed_urns)
    document: dict[str, Any] = {}
    for variant, overrides in VARIANTS.items():
        run = run_program("prod", overrides)
        assert run.error is None, run.error
        document[variant] = describe(run)
    with open(project_path(fixture), "w") as out:
        json.dump(document, out, indent=1, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
