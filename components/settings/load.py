"""The stack's settings read from its config: which key means what, what each allows, which
combinations are refused, before any resource exists. load_settings reads the keys in one order, one
area at a time (images.py, stores.py, exposure.py, aws.py, contacts.py), and reports every problem
at once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Optional

from components.settings.aws import check_aws_target, read_aws, refuse_aws_only_features
from components.settings.contacts import read_alert_contacts, read_smtp, refuse_email_without_smtp
from components.settings.exposure import read_exposure, refuse_open_doors, refuse_public_access
from components.settings.images import read_container_metrics, read_images
from components.settings.model import TARGETS, Settings
from components.settings.reader import HTTPS_URL, ConfigReader
from components.settings.stores import read_prometheus_storage, read_retention
from components.stackconfig import PROJECT_DIR, declared_keys, load_stack_config, project_name

_NAME = re.compile(r"\A[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?\Z")
_NAMESPACE = re.compile(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,62})\Z")
_DATABASE_URL = re.compile(r"\A(postgres|mysql)://[^\s:@/]+:[^\s@]+@[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9_-]+\Z")
# How near a namespace must be to the project's name (difflib's ratio) to read as a misspelling of it.
NAMESPACE_CUTOFF = 0.75
# An SDK exports a span up to 5 s after it ends (the batch span processor's default schedule delay).
SDK_EXPORT_DELAY_SECONDS = 5

# Keys whose values are credentials: they must be set with `pulumi config set --secret`.
SECRET_KEYS = ("alertSlackWebhookUrl", "alertPagerDutyIntegrationKey", "smtpPassword", "grafanaDatabaseUrl")


def _read_slow_threshold(reader: ConfigReader) -> int:
    """traceSlowThreshold: a slow trace must end within the tail sampler's decision wait less the
    time an SDK takes to export its last span, or the sampler judges it unfinished."""
    # Imported on use: collector_sampling imports this package (for Settings) while it loads.
    from components.services.collector_sampling import DECISION_WAIT_SECONDS

    maximum_ms = (DECISION_WAIT_SECONDS - SDK_EXPORT_DELAY_SECONDS) * 1000
    why = f"the sampler decides within {DECISION_WAIT_SECONDS}s of a trace's first span"
    return reader.short_duration_ms("traceSlowThreshold", maximum_ms, why)


def load_settings(
    get: Callable[[str], Optional[str]],
    project: str,
    stack: str,
    secret_keys: Collection[str] = (),
    aws_region: Optional[str] = None,
    given_keys: Collection[str] = (),
) -> Settings:
    """Build Settings from a getter of raw config strings (pulumi.Config.get or a dict's get).

    secret_keys: the keys the stack stores encrypted; a credential stored in plain text is refused.
    aws_region: the AWS provider's own `aws:region` setting.
    given_keys: every key the stack sets: the project's by name alone (grafanaPort), the others with
    their namespace (aws:region). A key of the project Pulumi.yaml does not declare (a misspelling) is
    refused, naming the nearest declared key; so is a key whose namespace is a near miss of the
    project's name (observabilty:grafanaPort), which the program would otherwise never read.
    """
    reader = ConfigReader(get, secret_keys)
    _refuse_unknown_keys(reader, project, given_keys)
    target = reader.choice("target", TARGETS)
    environment = reader.pattern("environment", _NAME, "lowercase letters, digits and dashes, at most 32 characters")
    namespace = reader.pattern("serviceNamespace", _NAMESPACE, "letters, digits, '.', '_' and '-', at most 63 characters")
    host_address = reader.ip_address("hostAddress")
    services, utility_image = read_images(reader)
    retention = read_retention(reader)
    sampling = reader.percentage("traceSamplingPercentage")
    slow_threshold_ms = _read_slow_threshold(reader)
    origins = reader.origins("corsAllowedOrigins")
    exposure = read_exposure(reader, host_address)
    runbook_base_url = reader.optional_pattern(
        "runbookBaseUrl", HTTPS_URL, "an absolute https:// URL of the runbook, e.g. https://github.com/org/repo/blob/main/docs/runbook.md"
    )
    refuse_open_doors(reader, target, host_address, exposure)
    aws = read_aws(reader, aws_region)
    if target == "aws":
        refuse_public_access(reader, exposure)
        check_aws_target(reader, aws, services, utility_image, retention["prometheus"])
    else:
        refuse_aws_only_features(reader, aws)
    contacts = read_alert_contacts(reader)
    smtp = read_smtp(reader)
    database_url = reader.secret(
        "grafanaDatabaseUrl", _DATABASE_URL, "postgres://user:password@host:port/database or mysql://user:password@host:port/database"
    )
    refuse_email_without_smtp(reader, contacts, smtp)
    prometheus_storage = read_prometheus_storage(reader, target)
    container_metrics = read_container_metrics(reader, target)
    reader.raise_if_invalid()
    return Settings(
        project=project,
        stack=stack,
        target=target,
        environment=environment,
        service_namespace=namespace,
        host_address=host_address,
        services=services,
        utility_image=utility_image,
        prometheus_retention=retention["prometheus"],
        tempo_retention=retention["tempo"],
        loki_retention=retention["loki"],
        trace_sampling_percentage=sampling,
        trace_slow_threshold_ms=slow_threshold_ms,
        cors_allowed_origins=origins,
        grafana_admin_user=exposure.grafana_admin_user,
        grafana_anonymous_role=exposure.grafana_anonymous_role,
        host_ports=exposure.host_ports,
        alert_contacts=contacts,
        smtp=smtp,
        otlp_require_token=exposure.otlp_require_token,
        external_host=exposure.external_host,
        marked_secret=frozenset(secret_keys),
        runbook_base_url=runbook_base_url,
        aws=aws if target == "aws" else None,
        grafana_database_url=database_url,
        prometheus_storage=prometheus_storage,
        container_metrics=container_metrics,
    )


def _refuse_unknown_keys(reader: ConfigReader, project: str, given_keys: Collection[str]) -> None:
    declared = declared_keys()
    keys = {key.removeprefix(f"{project}:") for key in given_keys}
    for key in sorted(keys - declared):
        namespace, colon, name = key.partition(":")
        if not colon:
            nearest = difflib.get_close_matches(key, declared, n=1, cutoff=0.6)
            hint = f"did you mean {nearest[0]}?" if nearest else "the keys this project reads are declared in Pulumi.yaml"
            reader.problem(key, f"is not a setting of this project; {hint}")
        elif _near_miss(namespace, project):
            meant = name if name in declared else (difflib.get_close_matches(name, declared, n=1, cutoff=0.6) or [name])[0]
            reader.problem(
                key,
                f"the namespace {namespace!r} is not this project's ({project}), so the program would ignore the key; "
                f"did you mean {project}:{meant}?",
            )


def _near_miss(namespace: str, project: str) -> bool:
    """A namespace that reads as a misspelling of the project's name (another provider's, aws or
    docker, is far from it)."""
    return namespace.lower() == project.lower() or bool(difflib.get_close_matches(namespace, [project], n=1, cutoff=NAMESPACE_CUTOFF))


def load_stack_settings(stack: str, project_dir: Path = PROJECT_DIR, **overrides: str) -> Settings:
    """The settings of a committed stack file with its Pulumi.yaml defaults, read without the CLI
    (plain values only: encrypted ones only the CLI can read); overrides replace keys of the project."""
    stack_config = load_stack_config(stack, project_dir)
    prefix = f"{project_name(project_dir)}:"
    config = {key.removeprefix(prefix): value for key, value in stack_config.items() if key.startswith(prefix)}
    config.update(overrides)
    others = [key for key in stack_config if not key.startswith(prefix)]
    return load_settings(config.get, prefix[:-1], stack, aws_region=stack_config.get("aws:region"), given_keys=[*config, *others])


def load_from_pulumi() -> Settings:
    """Read the current stack's config once (only called by __main__.py)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    config = pulumi.Config()
    project = pulumi.get_project()
    # Every key the engine hands over (PULUMI_CONFIG from the CLI; set directly under test mocks).
    given = {*CONFIG.get(), *(get_config_env() or {})}
    secret_keys = [key.split(":", 1)[1] for key in given if key.startswith(f"{project}:") and is_config_secret(key)]
    return load_settings(
        config.get,
        project,
        pulumi.get_stack(),
        secret_keys,
        aws_region=pulumi.Config("aws").get("region"),
        given_keys=[key.removeprefix(f"{project}:") for key in given],
    )
