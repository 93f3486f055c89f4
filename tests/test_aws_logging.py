"""Optional logs of what reaches the stack: VPC flow logs and the web ACL's request log, each to a
CloudWatch log group with the stack's log retention; off by default, priced in tests/costs.py."""

from __future__ import annotations

import json

import pulumi
import pytest

from tests.costs import PRICES, WORKLOAD, monthly_costs, price
from tests.harness import MOCK_ACCOUNT, MOCK_REGION, run_program, unwrap

FLOW_LOG = "aws:ec2/flowLog:FlowLog"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _run(overrides: dict[str, str]):
    run = run_program("prod", overrides)
    assert run.error is None, run.error
    return run


def test_neither_is_on_by_default():
    run = _run({})
    assert run.of_type(FLOW_LOG) == [] and run.of_type(WAF_LOGGING) == []
    assert all(g.inputs["name"].startswith("/ecs/") for g in run.of_type(LOG_GROUP))
    assert not {"VPC flow logs", "AWS WAF logs"} & {line.item for line in monthly_costs(run)}


@pytest.mark.parametrize(
    ("overrides", "vpc"),
    [({}, "vpc-id"), ({"vpcId": "vpc-0a1b2c3d4e5f60718", "publicSubnetIds": '["subnet-0a0000000000000a1", "subnet-0a0000000000000a2"]'},
                      "vpc-0a1b2c3d4e5f60718")],
    ids=["created-vpc", "existing-vpc"],
)
def test_vpc_flow_logs_go_to_a_log_group_with_the_stacks_retention(overrides, vpc):
    run = _run({**overrides, "vpcFlowLogs": "true"})
    (flow,) = run.of_type(FLOW_LOG)
    group = run.one(LOG_GROUP, "flow-logs")
    assert group.inputs["name"] == "/vpc/observability-prod/flow-logs" and group.inputs["retentionInDays"] == 30
    inputs = unwrap(flow.inputs)
    assert (inputs["vpcId"], inputs["trafficType"], inputs["logDestinationType"]) == (vpc, "ALL", "cloud-watch-logs")
    assert inputs["logDestination"].endswith("loggroup/flow-logs")
    role = run.one("aws:iam/role:Role", "flow-logs")
    assert inputs["iamRoleArn"].endswith("role/flow-logs")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    # Only the flow logs of this account (the VPC user guide's confused-deputy conditions).
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": MOCK_ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{MOCK_REGION}:{MOCK_ACCOUNT}:vpc-flow-log/*"},
    }
    (grant,) = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", "flow-logs").inputs["policy"])["Statement"]
    assert all(r.startswith(f"arn:aws:logs:{MOCK_REGION}:{MOCK_ACCOUNT}:loggroup/flow-logs") for r in grant["Resource"])
    assert "logs:CreateLogGroup" not in grant["Action"]


def test_waf_logging_logs_every_request_without_credentials():
    run = _run({"wafLogging": "true"})
    group = run.one(LOG_GROUP, "waf-logs")
    # AWS WAF logs only to log groups whose name starts with aws-waf-logs-.
    assert group.inputs["name"] == "aws-waf-logs-observability-prod" and group.inputs["retentionInDays"] == 30
    (logging,) = run.of_type(WAF_LOGGING)
    inputs = unwrap(logging.inputs)
    assert inputs["resourceArn"].endswith("webacl/browser-rate-limit")
    assert inputs["logDestinationConfigs"] == [f"arn:aws:logs:{MOCK_REGION}:{MOCK_ACCOUNT}:loggroup/waf-logs"]
    # The OTLP token and Grafana's session never reach the log.
    assert inputs["redactedFields"] == [{"singleHeader": {"name": "authorization"}}, {"singleHeader": {"name": "cookie"}}]


@pytest.mark.parametrize(
    ("stack", "overrides", "message"),
    [
        ("prod", {"wafLogging": "true", "browserRateLimit": "0"}, "wafLogging: is true but browserRateLimit is 0"),
        ("dev", {"vpcFlowLogs": "true"}, "vpcFlowLogs: logs the AWS VPC's traffic, so it needs target aws; allowed on docker: false"),
        ("dev", {"wafLogging": "true"}, "wafLogging: logs the AWS web ACL's requests, so it needs target aws; allowed on docker: false"),
        ("prod", {"vpcFlowLogs": "on"}, "vpcFlowLogs: 'on' is not true or false; allowed: true, false"),
    ],
)
def test_a_log_with_nothing_to_log_is_refused_before_any_resource(stack, overrides, message):
    run = run_program(stack, overrides)
    assert isinstance(run.error, pulumi.RunError), run.error
    assert message in str(run.error)
    assert run.resources == []


def test_each_log_is_priced_per_gb_at_the_workloads_volume():
    base = {line.item: line.usd for line in monthly_costs(_run({}))}
    both = {line.item: line.usd for line in monthly_costs(_run({"vpcFlowLogs": "true", "wafLogging": "true"}))}
    per_gb = price("vended_logs_gb_ingested") + price("logs_gb_month")
    assert both["VPC flow logs"] == pytest.approx(WORKLOAD["flow_logs_gb"] * per_gb, abs=0.01)
    requests = WORKLOAD["load_balancer_requests_per_second"] * 730 * 3600
    assert both["AWS WAF logs"] == pytest.approx(requests * WORKLOAD["waf_log_record_kb"] / 1024**2 * per_gb, abs=0.01)
    # The log groups are all they add.
    assert {k: v for k, v in both.items() if k not in ("VPC flow logs", "AWS WAF logs")} == base
    assert "vended_logs_gb_ingested" in PRICES
