"""The guardrails as plain functions, so pytest can call them without the Pulumi engine.

A resource rule takes (type, props, opts) and returns its violations as messages; a stack rule takes
every resource and returns (message, urn) pairs. Props are the engine's view: camelCase keys, JSON
policies and container definitions as strings. pack.py wraps each rule for pulumi_policy, and
__main__.py serves the pack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml

REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
CONTAINER = "docker:index/container:Container"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
EFS = "aws:efs/fileSystem:FileSystem"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
BUCKET_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
BUCKET_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
IAM_POLICIES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
# What holds data that a replacement or a slip of `destroy` would lose.
STATEFUL = (*BUCKETS, EFS, "aws:rds/instance:Instance", "aws:rds/cluster:Cluster", "aws:dynamodb/table:Table")

# Data-plane actions: granting them on every resource hands over every object, secret or key.
_DATA_ACTIONS = re.compile(
    r"^(\*|[a-z0-9-]+:\*|s3:(Get|Put|Delete|List|Restore|Abort)\w*|secretsmanager:GetSecretValue|ssm:GetParameters?\w*"
    r"|kms:(Decrypt|Encrypt|GenerateDataKey\w*|ReEncrypt\w*)|dynamodb:\w+|elasticfilesystem:Client\w+|aps:(RemoteWrite|Query\w*|Get\w*))$",
    re.IGNORECASE,
)
_SECRET_NAME = re.compile(r"(^|_)(PASSWORD|PASSWD|TOKEN|SECRET|KEY|APIKEY|CREDENTIALS?)(_|$)", re.IGNORECASE)
# Names that point at where a secret is (a file), not at the secret itself.
_SECRET_POINTER = re.compile(r"_(FILE|PATH|ARN|ID|NAME)$", re.IGNORECASE)
_LOOPBACK = ("127.0.0.1", "::1")
# Production stacks: their data stores must be protected (productionStacks, by default), and the
# workflows deploy them only through the protected `production` environment (scripts/stacks.py).
PRODUCTION_STACKS = ("prod",)


@dataclass(frozen=True)
class Options:
    """What a rule may need besides the props: the resource's options, its stack, the policy config."""

    protect: bool = False
    stack: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resource:
    """One resource of a stack, for stack rules. dependencies: property -> URNs it was built from."""

    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)


ResourceRule = Callable[[str, Mapping[str, Any], Options], list[str]]
StackRule = Callable[[Sequence[Resource]], list[tuple[str, str]]]


def stack_of(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<type>::<name>"""
    return urn.split(":")[2] if urn.count(":") >= 2 else ""


def _peek(props: Mapping[str, Any], key: str) -> Any:
    """The value, or None while it is unknown (during preview the policy SDK raises on reading it)."""
    try:
        return props.get(key)
    except Exception as error:  # pulumi_policy.proxy.UnknownValueError, without importing the SDK here
        if type(error).__name__ == "UnknownValueError":
            return None
        raise


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _list(value: Any) -> list[Any]:
    if value is None or isinstance(value, (str, bytes)):
        return []
    return list(value) if isinstance(value, Sequence) else []


def container_definitions(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in _list(_json(props.get("containerDefinitions"))) if isinstance(c, Mapping)]


def ecs_environment(container: Mapping[str, Any]) -> dict[str, str]:
    return {str(e.get("name")): str(e.get("value", "")) for e in _list(container.get("environment")) if isinstance(e, Mapping)}


def docker_environment(props: Mapping[str, Any]) -> dict[str, str]:
    pairs = (str(entry).partition("=") for entry in _list(props.get("envs")))
    return {name: value for name, _, value in pairs}


# A tag that names one release (the settings refuse the same: components/settings/reader.py VERSION_TAG;
# the pack runs from its own folder and cannot import the program).
VERSION_TAG = re.compile(r"\Av?[0-9]+(?:\.[0-9]+){2,}(?:[-_+.][0-9A-Za-z][0-9A-Za-z._+-]*)?\Z")


def image_problem(reference: str) -> Optional[str]:
    """Why an image reference is not pinned, or None. A digest pins; a tag pins if it is a full version."""
    name, _, digest = reference.partition("@")
    if digest:
        return None if re.fullmatch(r"sha256:[a-f0-9]{64}", digest) else f"{reference!r} has a malformed digest"
    tag = name.rpartition("/")[2].partition(":")[2]
    if not tag:
        return f"{reference!r} has no tag (Docker reads that as 'latest'); pin a version tag or a digest"
    if tag == "latest":
        return f"{reference!r} uses 'latest'; pin a version tag or a digest"
    if not VERSION_TAG.match(tag):
        return f"{reference!r} has the tag {tag!r}, which is not a full version (1.2.3) and may move; pin a version tag or a digest"
    return None


# --- resource rules ---------------------------------------------------------------------------


def images_pinned(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """Every image is pinned by version tag or digest, never 'latest': a deploy must be repeatable."""
    references: list[str] = []
    if type_ == REMOTE_IMAGE:
        references.append(str(props.get("name", "")))
    elif type_ == CONTAINER:
        image = _peek(props, "image")
        # The id of an image pulled by a RemoteImage (whose reference that rule checks).
        if isinstance(image, str) and not image.startswith("sha256:"):
            references.append(image)
    elif type_ == TASK_DEFINITION:
        references.extend(str(c.get("image", "")) for c in container_definitions(props))
    return [problem for problem in map(image_problem, references) if problem]


def grafana_anonymous_access(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """Anonymous visitors are never Grafana Admins; on AWS (served publicly) there are none."""
    problems: list[str] = []
    environments: list[tuple[dict[str, str], bool]] = []
    if type_ == CONTAINER:
        environments.append((docker_environment(props), False))
    elif type_ == TASK_DEFINITION:
        environments.extend((ecs_environment(c), True) for c in container_definitions(props))
    for env, public in environments:
        enabled = env.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "true"
        if env.get("GF_AUTH_ANONYMOUS_ORG_ROLE", "").lower() == "admin":
            problems.append("GF_AUTH_ANONYMOUS_ORG_ROLE is Admin: anyone who can reach Grafana could change it")
        if public and enabled:
            problems.append("GF_AUTH_ANONYMOUS_ENABLED is true on AWS, where Grafana is served publicly; set it to false")
    return problems


def ecs_secrets_not_in_environment(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """Credentials reach ECS containers through `secrets` (Secrets Manager), never in `environment`,
    which anyone who can describe the task definition reads."""
    if type_ != TASK_DEFINITION:
        return []
    return [
        f"container {c.get('name')!r} gets {name} as a plain environment variable; pass it in `secrets`"
        for c in container_definitions(props)
        for name in ecs_environment(c)
        if _SECRET_NAME.search(name) and not _SECRET_POINTER.search(name)
    ]


def log_groups_have_retention(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """CloudWatch keeps logs forever (and bills for them) unless told otherwise."""
    if type_ != LOG_GROUP:
        return []
    days = props.get("retentionInDays")
    return [] if isinstance(days, (int, float)) and days > 0 else ["the log group has no retentionInDays: logs would be kept forever"]


def efs_encrypted(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """Grafana's database lives on EFS: encrypted at rest, which can only be chosen at creation."""
    if type_ != EFS or props.get("encrypted") is True:
        return []
    return ["the EFS file system is not encrypted at rest (encrypted: true)"]


def iam_no_wildcard_data_access(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """No Allow statement grants data actions (objects, secrets, keys) on Resource '*'."""
    if type_ not in IAM_POLICIES:
        return []
    document = _json(props.get("policy"))
    statements = document.get("Statement", []) if isinstance(document, Mapping) else []
    problems = []
    for statement in [statements] if isinstance(statements, Mapping) else _list(statements):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else _list(resources)
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else _list(actions)
        data_actions = sorted(str(a) for a in actions if _DATA_ACTIONS.match(str(a)))
        if "*" in resources and data_actions:
            problems.append(f"statement {statement.get('Sid', '(no Sid)')!r} allows {', '.join(data_actions)} on every resource ('*')")
    return problems


def stateful_protected_in_production(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """In production, data stores carry `protect`, so no replace or destroy removes them unnoticed."""
    production = opts.config.get("productionStacks", PRODUCTION_STACKS)
    if type_ not in STATEFUL or opts.stack not in production or opts.protect:
        return []
    return [f"{type_.rsplit(':', 1)[-1]} holds data in stack {opts.stack!r} but is not protected (ResourceOptions(protect=True))"]


def ports_on_loopback(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """Docker publishes ports on every interface unless told otherwise: the dev stack's services have
    no authentication, so they stay on this machine unless the policy config allows an address."""
    if type_ != CONTAINER:
        return []
    allowed = (*_LOOPBACK, *opts.config.get("allowedHostAddresses", ()))
    problems = []
    for port in _list(props.get("ports")):
        if not isinstance(port, Mapping):
            continue
        address = port.get("ip") or "0.0.0.0"
        if address not in allowed:
            problems.append(
                f"port {port.get('external', port.get('internal'))} is published on {address}; use 127.0.0.1 "
                "or list the address in the policy config allowedHostAddresses"
            )
    return problems


def docker_logs_rotated(type_: str, props: Mapping[str, Any], opts: Options) -> list[str]:
    """Docker's json-file driver grows without bound unless max-size is set: a full disk stops the stores.
    One-shot containers (restart: no) are exempt: they log a few lines and exit."""
    if type_ != CONTAINER or props.get("restart") == "no" or (props.get("logDriver") or "json-file") != "json-file":
        return []
    options = props.get("logOpts") or {}
    return [] if isinstance(options, Mapping) and options.get("max-size") else ["json-file logs without max-size grow without bound"]


RESOURCE_RULES: dict[str, ResourceRule] = {
    "images-pinned": images_pinned,
    "grafana-anonymous-access": grafana_anonymous_access,
    "ecs-secrets-not-in-environment": ecs_secrets_not_in_environment,
    "log-groups-have-retention": log_groups_have_retention,
    "efs-encrypted": efs_encrypted,
    "iam-no-wildcard-data-access": iam_no_wildcard_data_access,
    "stateful-protected-in-production": stateful_protected_in_production,
    "ports-on-loopback": ports_on_loopback,
    "docker-logs-rotated": docker_logs_rotated,
}


# --- stack rules ------------------------------------------------------------------------------


def _guards(resources: Sequence[Resource], bucket: Resource, types: Sequence[str]) -> Iterator[Resource]:
    """Resources of `types` attached to the bucket: by dependency (known in preview) or by name."""
    name = _peek(bucket.props, "bucket")
    for resource in resources:
        if resource.type in types and (
            bucket.urn in resource.dependencies.get("bucket", ()) or (name and _peek(resource.props, "bucket") == name)
        ):
            yield resource


def s3_buckets_encrypted(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every bucket has default server-side encryption configured."""
    return [
        (f"bucket {b.name!r} has no server-side encryption configuration", b.urn)
        for b in resources
        if b.type in BUCKETS
        and not b.props.get("serverSideEncryptionConfiguration")
        and not any(_guards(resources, b, BUCKET_ENCRYPTION))
    ]


def s3_public_access_blocked(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """Every bucket has a public access block with all four switches on."""
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    return [
        (f"bucket {b.name!r} has no public access block with {', '.join(flags)} all true", b.urn)
        for b in resources
        if b.type in BUCKETS
        and not any(all(g.props.get(f) is True for f in flags) for g in _guards(resources, b, (BUCKET_PUBLIC_ACCESS_BLOCK,)))
    ]


def collector_configs(resources: Sequence[Resource]) -> list[dict[str, Any]]:
    """Collector configs the stack ships: YAML with an otlp receiver, in a Docker upload or an ECS
    container's environment (the AWS platform hands config files to an init container that way)."""
    texts: list[str] = []
    for r in resources:
        if r.type == CONTAINER:
            texts.extend(str(u.get("content", "")) for u in _list(r.props.get("uploads")) if isinstance(u, Mapping))
        elif r.type == TASK_DEFINITION:
            texts.extend(value for c in container_definitions(r.props) for value in ecs_environment(c).values())
    configs = []
    for text in texts:
        if "receivers" not in text:
            continue
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        if isinstance(document, dict) and isinstance(document.get("receivers"), dict) and "otlp" in document["receivers"]:
            configs.append(document)
    return configs


def _unauthenticated_protocols(config: Mapping[str, Any]) -> list[str]:
    extensions = set((config.get("service") or {}).get("extensions") or ())
    protocols = ((config.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}
    missing = []
    for name, settings in protocols.items():
        authenticator = ((settings or {}).get("auth") or {}).get("authenticator", "")
        if not (authenticator.startswith("bearertokenauth") and authenticator in extensions and authenticator in (config.get("extensions") or {})):
            missing.append(name)
    return missing


def public_otlp_requires_authentication(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """With an internet-facing load balancer, the collector's OTLP receivers demand a bearer token."""
    public = [r for r in resources if r.type == LOAD_BALANCER and r.props.get("internal") is not True]
    if not public:
        return []
    configs = collector_configs(resources)
    if not configs:
        return [("an internet-facing load balancer exists but no collector config was found to check its authentication", public[0].urn)]
    return [
        (f"OTLP {protocol} is reachable through internet-facing load balancer {public[0].name!r} without bearertokenauth", public[0].urn)
        for config in configs
        for protocol in _unauthenticated_protocols(config)
    ]


STACK_RULES: dict[str, StackRule] = {
    "s3-buckets-encrypted": s3_buckets_encrypted,
    "s3-public-access-blocked": s3_public_access_blocked,
    "public-otlp-requires-authentication": public_otlp_requires_authentication,
}
