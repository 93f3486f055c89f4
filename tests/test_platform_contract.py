"""The platform contract (components/platforms/spec.py): each platform honours every ServiceSpec
field or refuses the spec with a SpecError naming the field. Run under the same mocks as the
program, with specs of services the stack does not have."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import pulumi
import pytest

from components.platforms import platform_for
from components.platforms.spec import HostMount, Port, Scaling, ServiceSpec, SpecError
from components.settings import load_from_pulumi
from tests.harness import ProgramRun, project_path, run_program

RULE_TYPES = ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")


def ring(**fields) -> ServiceSpec:
    """A service of several members that talk among themselves (a memberlist ring)."""
    return ServiceSpec(name="ring", image="busybox:1.37.0", memory_mb=128, ports=(Port("http", 8080),), **fields)


def on(stack: str, *specs: ServiceSpec) -> tuple[ProgramRun, list[BaseException]]:
    """The specs run in this order on the stack's platform."""
    raised: list[BaseException] = []

    def main() -> None:
        platform = platform_for(load_from_pulumi())
        parent = pulumi.ComponentResource("observability:test:Ring", "ring")
        try:
            for spec in specs:
                platform.run(spec, parent=parent)
        except SpecError as error:
            raised.append(error)

    run = run_program(stack, main=main)
    assert run.error is None, run.error
    return run, raised


def test_aws_opens_the_gossip_port_on_tcp_and_udp_between_the_services_own_tasks_only():
    run, raised = on("prod", ring(cpu_units=256, stateless=True, scaling=Scaling(3, 3), gossip_port=7946))
    assert not raised
    rules = {r.name: r.inputs for t in RULE_TYPES for r in run.of_type(t) if r.name.startswith("ring-gossip-")}
    assert set(rules) == {f"ring-gossip-{p}-{d}" for p in ("tcp", "udp") for d in ("in", "out")}
    (group,) = [g for g in run.of_type("aws:ec2/securityGroup:SecurityGroup") if g.name == "ring-sg"]
    for name, rule in rules.items():
        assert (rule["fromPort"], rule["toPort"], rule["ipProtocol"]) == (7946, 7946, name.split("-")[2])
        # From and to the service's own group: no other task reaches the port.
        assert rule["referencedSecurityGroupId"] == rule["securityGroupId"] == f"{group.name}-id"
        assert "cidrIpv4" not in rule
    (service,) = run.of_type("aws:ecs/service:Service")
    assert service.inputs["desiredCount"] == 3


def test_without_a_gossip_port_nothing_is_opened_between_tasks():
    run, _ = on("prod", ring(cpu_units=256))
    assert not [r for t in RULE_TYPES for r in run.of_type(t) if "gossip" in r.name]


STORE = ServiceSpec(
    name="store", image="busybox:1.37.0", memory_mb=128, cpu_units=256,
    ports=(Port("write", 9000, clients=("writer", "absent")), Port("peers", 9001)),
)
WRITER = ServiceSpec(name="writer", image="busybox:1.37.0", memory_mb=128, cpu_units=256, ports=(Port("http", 8080),))


@pytest.mark.parametrize("order", [(STORE, WRITER), (WRITER, STORE)], ids=["server-first", "client-first"])
def test_aws_admits_a_port_from_the_clients_its_spec_names_only_whatever_the_order(order):
    run, raised = on("prod", *order)
    assert not raised
    between = {
        (r.type.split(":")[-1], r.inputs["securityGroupId"], r.inputs["referencedSecurityGroupId"], r.inputs["fromPort"], r.inputs["toPort"])
        for t in RULE_TYPES for r in run.of_type(t) if r.inputs.get("referencedSecurityGroupId")
    }
    # The store's write port from the writer (its group's ingress, the writer's egress); nothing on
    # the port no client names, nothing for a client the platform never runs, nothing to the writer.
    assert between == {
        ("SecurityGroupIngressRule", "store-sg-id", "writer-sg-id", 9000, 9000),
        ("SecurityGroupEgressRule", "writer-sg-id", "store-sg-id", 9000, 9000),
    }
    for service in by_name(run, "aws:ecs/service:Service").values():
        assert service.inputs["networkConfiguration"]["securityGroups"] == [f"{service.name.removesuffix('-service')}-sg-id"]


def by_name(run: ProgramRun, type_: str) -> dict:
    return {r.name: r for r in run.of_type(type_)}


@pytest.mark.parametrize(
    ("stack", "spec", "field"),
    [
        ("dev", ring(stateless=True, scaling=Scaling(1, 3)), "scaling"),
        ("dev", ring(cpu_units=256), "cpu_units"),
        ("dev", ring(disk_gib=30), "disk_gib"),
        ("prod", ring(cpu_units=256, host_mounts=(HostMount("/", "/rootfs"),)), "host_mounts"),
        ("prod", ring(), "cpu_units"),
        ("prod", ring(cpu_units=256, scaling=Scaling(1, 3)), "scaling"),
    ],
    ids=["docker-scaling", "docker-cpu", "docker-disk", "aws-host-mounts", "aws-no-cpu", "aws-scaling-stateful"],
)
def test_a_field_the_platform_cannot_honour_is_refused_by_name_before_it_creates_anything(stack, spec, field):
    run, raised = on(stack, spec)
    (error,) = raised
    assert f"ServiceSpec.{field}" in str(error) and "ring" in str(error)
    assert not [r for r in run.resources if r.name.startswith("ring-")]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def sources(folder: str, keep: Optional[Callable[[Path], bool]] = None) -> list[Path]:
    return [p for p in sorted(project_path(folder).rglob("*.py")) if keep is None or keep(p)]


def test_no_platform_module_imports_a_service():
    for path in sources("components/platforms"):
        assert not {m for m in imported_modules(path) if m.startswith("components.services")}, path


def test_no_service_or_stack_code_asks_which_platform_it_runs_on():
    for path in [*sources("components/services"), project_path("components/stack.py"), project_path("components/plan.py")]:
        text = path.read_text()
        assert "settings.target" not in text and "settings.aws" not in text, path
