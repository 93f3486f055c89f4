"""The pack's policies: thin pulumi_policy wrappers around the rules in rules.py (importable by tests;
__main__.py serves them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

import rules

PACK_NAME = "observability-guardrails"

# Options a team may set with --policy-pack-config (JSON: {"<policy>": {"<key>": ...}}).
CONFIG_SCHEMAS = {
    "ports-on-loopback": PolicyConfigSchema(
        properties={"allowedHostAddresses": {"type": "array", "items": {"type": "string"}, "default": []}}
    ),
    "stateful-protected-in-production": PolicyConfigSchema(
        properties={"productionStacks": {"type": "array", "items": {"type": "string"}, "default": list(rules.PRODUCTION_STACKS)}}
    ),
}


def _description(rule: Any) -> str:
    return " ".join((rule.__doc__ or rule.__name__).split())


def resource_policy(name: str, rule: rules.ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        opts = rules.Options(protect=bool(args.opts.protect), stack=rules.stack_of(args.urn), config=args.get_config())
        for message in rule(args.resource_type, args.props, opts):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=name,
        description=_description(rule),
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONFIG_SCHEMAS.get(name),
    )


def _dependencies(property_dependencies: Mapping[str, Sequence[Any]]) -> dict[str, list[str]]:
    return {key: [r.urn for r in deps] for key, deps in property_dependencies.items()}


def stack_policy(name: str, rule: rules.StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            rules.Resource(r.resource_type, r.name, r.props, r.urn, _dependencies(r.property_dependencies)) for r in args.resources
        ]
        for message, urn in rule(resources):
            report_violation(message, urn or None)

    return StackValidationPolicy(
        name=name, description=_description(rule), validate=validate, enforcement_level=EnforcementLevel.MANDATORY
    )


def policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [
        *(resource_policy(name, rule) for name, rule in rules.RESOURCE_RULES.items()),
        *(stack_policy(name, rule) for name, rule in rules.STACK_RULES.items()),
    ]
