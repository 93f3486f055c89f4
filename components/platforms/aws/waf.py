"""An AWS WAF web ACL on the load balancer that rate-limits the browser route per client address:
the route takes OTLP without a token, so one address must not flood it. Made wherever the route
exists (corsAllowedOrigins lists an origin) unless browserRateLimit is 0.

Cost (AWS WAF pricing): $5 a month for the web ACL, $1 a month for its rule, and $0.60 per million
requests the ACL inspects, which is every request to the load balancer (Grafana and server OTLP
too), not only the browser route's (tests/costs.py prices the reference workload's).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

# Rate-based rules count over a window of 60, 120, 300 or 600 seconds (AWS WAF developer guide,
# "Rate-based rule high-level settings"); browserRateLimit is per 5 minutes.
EVALUATION_WINDOW_SECONDS = 300


# Request headers AWS WAF logs carry that hold credentials: the OTLP token, Grafana's session.
REDACTED_HEADERS = ("authorization", "cookie")


class BrowserRateLimit(pulumi.ComponentResource):
    """log_days: wafLogging, the web ACL's request log kept this many days; None: no log."""

    def __init__(self, name: str, load_balancer_arn: pulumi.Input[str], limit: int, path_prefix: str, prefix: str,
                 log_days: int | None = None, opts: pulumi.ResourceOptions | None = None):
        super().__init__("observability:aws:BrowserRateLimit", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        w = aws.wafv2
        path_starts_with = w.WebAclRuleStatementRateBasedStatementScopeDownStatementArgs(
            byte_match_statement=w.WebAclRuleStatementRateBasedStatementScopeDownStatementByteMatchStatementArgs(
                positional_constraint="STARTS_WITH",
                search_string=path_prefix,
                field_to_match=w.WebAclRuleStatementRateBasedStatementScopeDownStatementByteMatchStatementFieldToMatchArgs(
                    uri_path=w.WebAclRuleStatementRateBasedStatementScopeDownStatementByteMatchStatementFieldToMatchUriPathArgs()
                ),
                text_transformations=[
                    w.WebAclRuleStatementRateBasedStatementScopeDownStatementByteMatchStatementTextTransformationArgs(priority=0, type="NONE")
                ],
            )
        )
        self.web_acl = w.WebAcl(
            name,
            name=f"{prefix}-browser-rate-limit",
            description="Rate limit per client address on the browser OTLP route; everything else passes",
            scope="REGIONAL",
            default_action=w.WebAclDefaultActionArgs(allow=w.WebAclDefaultActionAllowArgs()),
            rules=[
                w.WebAclRuleArgs(
                    name="browser-rate-limit",
                    priority=1,
                    action=w.WebAclRuleActionArgs(block=w.WebAclRuleActionBlockArgs()),
                    statement=w.WebAclRuleStatementArgs(
                        rate_based_statement=w.WebAclRuleStatementRateBasedStatementArgs(
                            aggregate_key_type="IP",
                            limit=limit,
                            evaluation_window_sec=EVALUATION_WINDOW_SECONDS,
                            scope_down_statement=path_starts_with,
                        )
                    ),
                    visibility_config=w.WebAclRuleVisibilityConfigArgs(
                        cloudwatch_metrics_enabled=True, metric_name=f"{prefix}-browser-rate-limit", sampled_requests_enabled=True
                    ),
                )
            ],
            visibility_config=w.WebAclVisibilityConfigArgs(
                cloudwatch_metrics_enabled=True, metric_name=f"{prefix}-web-acl", sampled_requests_enabled=True
            ),
            opts=child,
        )
        aws.wafv2.WebAclAssociation(
            name, resource_arn=load_balancer_arn, web_acl_arn=self.web_acl.arn, opts=child,
        )
        if log_days is not None:
            self._log(prefix, log_days, child)
        self.register_outputs({"webAclArn": self.web_acl.arn})

    def _log(self, prefix: str, days: int, child: pulumi.ResourceOptions) -> None:
        """Every request the web ACL inspects, to a log group AWS WAF accepts (its name must begin
        aws-waf-logs-: AWS WAF developer guide, "Sending web ACL traffic logs to a CloudWatch Logs
        log group"); WAF adds the group's resource policy for its log delivery itself."""
        group = aws.cloudwatch.LogGroup("waf-logs", name=f"aws-waf-logs-{prefix}", retention_in_days=days, opts=child)
        w = aws.wafv2
        aws.wafv2.WebAclLoggingConfiguration(
            "waf-logs",
            resource_arn=self.web_acl.arn,
            log_destination_configs=[group.arn],
            redacted_fields=[
                w.WebAclLoggingConfigurationRedactedFieldArgs(single_header=w.WebAclLoggingConfigurationRedactedFieldSingleHeaderArgs(name=header))
                for header in REDACTED_HEADERS
            ],
            opts=child,
        )
