"""East-west traffic on aws: which task may open a connection to which port of which other, computed
from every security-group rule the mocked prod program registers (a task carries the groups its ECS
service names; a connection needs an egress rule on one of the source's groups and an ingress rule
on one of the target's). The result must be exactly the flows the architecture has."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import ProgramRun, run_program, unwrap

INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ANYWHERE = "0.0.0.0/0"

Flow = tuple[str, str, int, str]


def _members(run: ProgramRun) -> dict[str, set[str]]:
    """What holds security groups -> its groups' ids: each ECS service's tasks, the load balancer,
    each EFS file system's mount targets."""
    members: dict[str, set[str]] = {}
    for service in run.of_type("aws:ecs/service:Service"):
        members[service.name.removesuffix("-service")] = set(unwrap(service.inputs)["networkConfiguration"]["securityGroups"])
    for balancer in run.of_type("aws:lb/loadBalancer:LoadBalancer"):
        members["alb"] = set(unwrap(balancer.inputs)["securityGroups"])
    for target in run.of_type("aws:efs/mountTarget:MountTarget"):
        inputs = unwrap(target.inputs)
        members.setdefault("efs:" + inputs["fileSystemId"].removesuffix("-id"), set()).update(inputs["securityGroups"])
    return members


def _ports(rule: dict[str, Any]) -> range:
    return range(int(rule["fromPort"]), int(rule["toPort"]) + 1)


def _ingress_ports(ingress: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], int]]:
    for rule in ingress:
        if rule.get("referencedSecurityGroupId") is None:
            continue  # from the internet (the load balancer's listeners): not east-west
        ports = _ports(rule)
        assert len(ports) < 100, f"an ingress range is not a port: {rule}"
        for port in ports:
            yield rule, port


def flows(run: ProgramRun) -> set[Flow]:
    """(source, target, port, protocol) for every connection the rules let one member open to another."""
    members = _members(run)
    ingress = [unwrap(r.inputs) for r in run.of_type(INGRESS)]
    egress = [unwrap(r.inputs) for r in run.of_type(EGRESS)]
    found: set[Flow] = set()
    for target, target_groups in members.items():
        for rule, port in _ingress_ports(ingress):
            if rule["securityGroupId"] not in target_groups:
                continue
            for source, source_groups in members.items():
                if rule["referencedSecurityGroupId"] not in source_groups:
                    continue
                if any(
                    out["securityGroupId"] in source_groups
                    and out["ipProtocol"] in (rule["ipProtocol"], "-1")
                    and port in _ports(out)
                    and (out.get("referencedSecurityGroupId") in target_groups or out.get("cidrIpv4") == ANYWHERE)
                    for out in egress
                ):
                    found.add((source, target, port, rule["ipProtocol"]))
    return found


def _tcp(*flows_: tuple[str, str, int]) -> set[Flow]:
    return {(source, target, port, "tcp") for source, target, port in flows_}


# The load balancer to the routed ports and their health port; each service to its own file systems.
EDGE = _tcp(
    ("alb", "collector", 4317), ("alb", "collector", 4318), ("alb", "collector", 4319), ("alb", "collector", 13133),
    ("alb", "grafana", 3000),
)
STORES_READ = _tcp(
    # Prometheus scrapes every component's own metrics (plan.scrape_targets)...
    ("prometheus", "collector", 8888), ("prometheus", "tempo", 3200), ("prometheus", "loki", 3100), ("prometheus", "grafana", 3000),
    # ... and Grafana queries the stores.
    ("grafana", "tempo", 3200), ("grafana", "loki", 3100),
)
ONE_COLLECTOR = EDGE | STORES_READ | _tcp(
    ("collector", "tempo", 4317), ("collector", "loki", 3100), ("collector", "prometheus", 9090), ("grafana", "prometheus", 9090),
    ("collector", "efs:collector-queue", 2049), ("grafana", "efs:grafana-data", 2049),
)
TWO_TIERS = EDGE | STORES_READ | _tcp(
    # The ingest tier: logs and metrics to the stores, spans to the sampler tier (by trace id).
    ("collector", "collector-sampler", 4317), ("collector", "loki", 3100), ("collector", "prometheus", 9090),
    # The sampler tier: kept traces to Tempo, span metrics to Prometheus.
    ("collector-sampler", "tempo", 4317), ("collector-sampler", "prometheus", 9090),
    ("prometheus", "collector-sampler", 8888),
    ("grafana", "prometheus", 9090),
    ("collector", "efs:collector-queue", 2049), ("collector-sampler", "efs:collector-sampler-queue", 2049), ("grafana", "efs:grafana-data", 2049),
)
# Metrics in Amazon Managed Service for Prometheus (HTTPS, SigV4): nothing writes to or reads the agent.
TWO_TIERS_AMP = {f for f in TWO_TIERS if f[1] != "prometheus"}

SHAPES = {
    "default": ({}, ONE_COLLECTOR),
    "scaled-out": ({"collectorMaxTasks": "4"}, TWO_TIERS),
    "scaled-out-amp": ({"collectorMaxTasks": "4", "metricsBackend": "amp", "taskSubnets": "private"}, TWO_TIERS_AMP),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_task_reaches_exactly_the_ports_the_architecture_uses(shape):
    overrides, expected = SHAPES[shape]
    run = run_program("prod", overrides)
    assert run.error is None, run.error
    found = flows(run)
    assert sorted(found - expected) == [], "flows the architecture does not have"
    assert sorted(expected - found) == [], "flows the stack needs but the rules do not allow"


def test_the_internet_facing_collector_reaches_no_query_or_ui_port():
    run = run_program("prod")
    assert run.error is None, run.error
    from_collector = {(target, port) for source, target, port, _ in flows(run) if source == "collector"}
    assert not {("grafana", 3000), ("tempo", 3200), ("loki", 9096), ("tempo", 9095)} & from_collector
    assert ("prometheus", 9090) in from_collector  # remote write, the one port it needs there


def test_tasks_leave_the_stack_only_on_https_and_the_ports_a_service_names():
    run = run_program("prod", {"smtpHost": "smtp.example.com:587", "smtpFromAddress": "grafana@example.com"})
    assert run.error is None, run.error
    outside = {
        (r.name.split("-egress-")[0], unwrap(r.inputs)["fromPort"], unwrap(r.inputs)["toPort"])
        for r in run.of_type(EGRESS)
        if unwrap(r.inputs).get("cidrIpv4")
    }
    services = {s.name.removesuffix("-service") for s in run.of_type("aws:ecs/service:Service")}
    assert outside == {(service, 443, 443) for service in services} | {("grafana", 587, 587)}
