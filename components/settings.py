"""One typed, validated model of the stack configuration.

Values come from the stack config (defaults live in Pulumi.yaml). Every problem is collected and
reported at once, each naming its config key and what is allowed, before any resource exists.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Optional

TARGETS = ("docker", "aws")
ANONYMOUS_ROLES = ("none", "Viewer", "Editor")
SERVICES = ("collector", "prometheus", "tempo", "loki", "grafana")

_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
_RETENTION = re.compile(r"^(?P<count>[1-9][0-9]*)(?P<unit>[hdw])$")
_HOURS_PER_UNIT = {"h": 1, "d": 24, "w": 24 * 7}
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9*.-]+(:([0-9]{1,5}|\*))?$")
_GRAFANA_USER = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
_EMAIL = re.compile(r"^[^@\s,;]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/\S*$")
# PagerDuty Events API v2 integration keys are 32 characters.
_PAGERDUTY_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
_SMTP_HOST = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")


class SettingsError(ValueError):
    """Raised with one line per invalid config key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Retention:
    hours: int

    @property
    def prometheus(self) -> str:
        return f"{self.hours}h"

    @property
    def go_duration(self) -> str:
        """Go's time.ParseDuration has no days: Tempo wants hours."""
        return f"{self.hours}h"

    @property
    def seconds(self) -> int:
        return self.hours * 3600


@dataclass(frozen=True)
class ServiceSettings:
    image: str
    memory_mb: int


@dataclass(frozen=True)
class HostPorts:
    grafana: int
    otlp_grpc: int
    otlp_http: int
    collector_health: int
    prometheus: int


@dataclass(frozen=True)
class Secret:
    """A config value that must stay secret: never printed, handed to resources as a secret Output."""

    value: str = field(repr=False)

    def output(self):
        import pulumi

        return pulumi.Output.secret(self.value)


@dataclass(frozen=True)
class AlertContacts:
    """Where alert notifications go; each channel is optional."""

    email_addresses: tuple[str, ...] = ()
    slack_webhook_url: Optional[Secret] = None
    pagerduty_integration_key: Optional[Secret] = None

    @property
    def channels(self) -> set[str]:
        return {
            name
            for name, configured in (
                ("email", bool(self.email_addresses)),
                ("slack", self.slack_webhook_url is not None),
                ("pagerduty", self.pagerduty_integration_key is not None),
            )
            if configured
        }


@dataclass(frozen=True)
class SmtpSettings:
    """The mail server Grafana sends e-mail notifications through."""

    host: str
    user: str
    password: Optional[Secret]
    from_address: str


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    target: str
    environment: str
    service_namespace: str
    host_address: str
    services: Mapping[str, ServiceSettings]
    utility_image: str
    prometheus_retention: Retention
    tempo_retention: Retention
    loki_retention: Retention
    trace_sampling_percentage: float
    cors_allowed_origins: tuple[str, ...]
    grafana_admin_user: str
    grafana_anonymous_role: Optional[str]
    host_ports: HostPorts
    alert_contacts: AlertContacts = AlertContacts()
    smtp: Optional[SmtpSettings] = None

    def image(self, service: str) -> str:
        return self.services[service].image

    def memory_mb(self, service: str) -> int:
        return self.services[service].memory_mb

    @property
    def resource_prefix(self) -> str:
        """Prefix for names that must be unique on a host or in an account."""
        return f"{self.project}-{self.stack}"


# Keys whose values are credentials: they must be set with `pulumi config set --secret`.
SECRET_KEYS = ("alertSlackWebhookUrl", "alertPagerDutyIntegrationKey", "smtpPassword")


def load_settings(
    get: Callable[[str], Optional[str]], project: str, stack: str, secret_keys: Collection[str] = ()
) -> Settings:
    """Build Settings from a getter of raw config strings (pulumi.Config.get or a dict's get).

    secret_keys: the keys the stack stores encrypted; a credential stored in plain text is refused.
    """
    reader = _Reader(get, secret_keys)
    target = reader.choice("target", TARGETS)
    environment = reader.pattern("environment", _NAME, "lowercase letters, digits and dashes, at most 32 characters")
    namespace = reader.pattern("serviceNamespace", _NAMESPACE, "letters, digits, '.', '_' and '-', at most 63 characters")
    host_address = reader.ip_address("hostAddress")
    services = {
        name: ServiceSettings(
            image=reader.image(f"{name}Image"),
            memory_mb=reader.integer(f"{name}MemoryMb", minimum=128, maximum=120 * 1024),
        )
        for name in SERVICES
    }
    utility_image = reader.image("utilityImage")
    retention = {
        store: reader.retention(f"{store}Retention", minimum_hours=24 if store == "loki" else 1, whole_days=store == "loki")
        for store in ("prometheus", "tempo", "loki")
    }
    sampling = reader.percentage("traceSamplingPercentage")
    origins = reader.origins("corsAllowedOrigins")
    admin_user = reader.pattern("grafanaAdminUser", _GRAFANA_USER, "1 to 64 letters, digits or . _ @ -")
    role = reader.choice("grafanaAnonymousRole", ANONYMOUS_ROLES, refused={"Admin": "anonymous visitors must never be Admin"})
    ports = HostPorts(
        grafana=reader.port("grafanaPort"),
        otlp_grpc=reader.port("otlpGrpcPort"),
        otlp_http=reader.port("otlpHttpPort"),
        collector_health=reader.port("collectorHealthPort"),
        prometheus=reader.port("prometheusPort"),
    )
    reader.distinct_ports(
        {"grafanaPort": ports.grafana, "otlpGrpcPort": ports.otlp_grpc, "otlpHttpPort": ports.otlp_http,
         "collectorHealthPort": ports.collector_health, "prometheusPort": ports.prometheus}
    )
    if target == "aws" and role not in (None, "none"):
        reader.problem("grafanaAnonymousRole", f"is {role!r}; the aws target serves Grafana publicly, so it must be 'none'")
    contacts = AlertContacts(
        email_addresses=reader.emails("alertEmailAddresses"),
        slack_webhook_url=reader.secret(
            "alertSlackWebhookUrl", _HTTPS_URL, "an https:// webhook URL such as https://hooks.slack.com/services/..."
        ),
        pagerduty_integration_key=reader.secret(
            "alertPagerDutyIntegrationKey", _PAGERDUTY_KEY, "the 32-character integration key of a PagerDuty Events API v2 integration"
        ),
    )
    smtp = _read_smtp(reader)
    if contacts.email_addresses and smtp is None:
        reader.problem("alertEmailAddresses", "e-mail needs a mail server: set smtpHost and smtpFromAddress too")
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
        cors_allowed_origins=origins,
        grafana_admin_user=admin_user,
        grafana_anonymous_role=None if role == "none" else role,
        host_ports=ports,
        alert_contacts=contacts,
        smtp=smtp,
    )


def _read_smtp(reader: _Reader) -> Optional[SmtpSettings]:
    host = reader.optional("smtpHost")
    user = reader.optional("smtpUser")
    password = reader.secret("smtpPassword", re.compile(r"^.+$"), "the SMTP user's password")
    from_address = reader.optional("smtpFromAddress")
    if host and not _SMTP_HOST.match(host):
        reader.problem("smtpHost", f"{host!r} is not a mail server address; allowed: host:port, e.g. smtp.example.com:587")
    if from_address and not _EMAIL.match(from_address):
        reader.problem("smtpFromAddress", f"{from_address!r} is not an e-mail address")
    if not host:
        for key, value in (("smtpUser", user), ("smtpPassword", password), ("smtpFromAddress", from_address)):
            if value:
                reader.problem(key, "is set but smtpHost is not; set smtpHost (host:port) or remove it")
        return None
    if not from_address:
        reader.problem("smtpFromAddress", "is missing; Grafana needs a sender address when smtpHost is set")
    if password and not user:
        reader.problem("smtpUser", "is missing; a password is only used with a user")
    return SmtpSettings(host=host, user=user, password=password, from_address=from_address)


class _Reader:
    """Parses one key at a time; records a problem instead of raising so all are reported."""

    def __init__(self, get: Callable[[str], Optional[str]], secret_keys: Collection[str] = ()):
        self._get = get
        self._secret_keys = set(secret_keys)
        self._problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self._problems.append(f"{key}: {message}")

    def raise_if_invalid(self) -> None:
        if self._problems:
            raise SettingsError(self._problems)

    def raw(self, key: str) -> Optional[str]:
        value = self._get(key)
        if value is None or value == "":
            self.problem(key, "is missing; set it in the stack file or restore its default in Pulumi.yaml")
            return None
        return value

    def optional(self, key: str) -> str:
        """A key whose default is empty: "" means not set."""
        return self._get(key) or ""

    def secret(self, key: str, regex: re.Pattern[str], allowed: str) -> Optional[Secret]:
        """An optional credential. Messages never repeat its value."""
        value = self.optional(key)
        if not value:
            return None
        if key not in self._secret_keys:
            self.problem(key, f"is stored in plain text; set it with `pulumi config set --secret {key} <value>`")
        if not regex.match(value):
            self.problem(key, f"is not valid (value not shown); allowed: {allowed}")
        return Secret(value)

    def emails(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            self.problem(key, f"{value!r} is not a list of strings; allowed: a YAML list of e-mail addresses, or []")
            return ()
        for address in parsed:
            if not _EMAIL.match(address):
                self.problem(key, f"{address!r} is not an e-mail address; allowed: name@example.com")
        return tuple(parsed)

    def choice(self, key: str, allowed: tuple[str, ...], refused: Optional[dict[str, str]] = None) -> str:
        value = self.raw(key)
        if value is None:
            return allowed[0]
        if refused and value in refused:
            self.problem(key, f"{value!r} is refused: {refused[value]}; allowed: {', '.join(allowed)}")
        elif value not in allowed:
            self.problem(key, f"{value!r} is not allowed; allowed: {', '.join(allowed)}")
        return value

    def pattern(self, key: str, regex: re.Pattern[str], allowed: str) -> str:
        value = self.raw(key)
        if value is not None and not regex.match(value):
            self.problem(key, f"{value!r} is not valid; allowed: {allowed}")
        return value or ""

    def ip_address(self, key: str) -> str:
        value = self.raw(key)
        if value is None:
            return ""
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            self.problem(key, f"{value!r} is not an IPv4 address; use 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)")
        return value

    def integer(self, key: str, minimum: int, maximum: int) -> int:
        value = self.raw(key)
        if value is None:
            return minimum
        try:
            number = int(value)
        except ValueError:
            self.problem(key, f"{value!r} is not a whole number; allowed: {minimum} to {maximum}")
            return minimum
        if not minimum <= number <= maximum:
            self.problem(key, f"{number} is out of range; allowed: {minimum} to {maximum}")
        return number

    def port(self, key: str) -> int:
        return self.integer(key, minimum=1, maximum=65535)

    def distinct_ports(self, ports: dict[str, int]) -> None:
        seen: dict[int, str] = {}
        for key, port in ports.items():
            if port in seen:
                self.problem(key, f"port {port} is already used by {seen[port]}; each published port must differ")
            seen[port] = key

    def image(self, key: str) -> str:
        value = self.raw(key)
        if value is None:
            return ""
        match = _IMAGE.match(value)
        if not match:
            self.problem(key, f"{value!r} is not an image reference; allowed: repository:tag or repository@sha256:digest")
        elif not match.group("tag") and not match.group("digest"):
            self.problem(key, f"{value!r} has no tag; pin a version, e.g. {value}:1.2.3")
        elif match.group("tag") == "latest" and not match.group("digest"):
            self.problem(key, f"{value!r} uses 'latest'; pin a version tag or a digest")
        return value

    def retention(self, key: str, minimum_hours: int, whole_days: bool) -> Retention:
        value = self.raw(key)
        if value is None:
            return Retention(hours=minimum_hours)
        match = _RETENTION.match(value)
        if not match:
            self.problem(key, f"{value!r} is not a retention; allowed: a whole number followed by h, d or w (e.g. 72h, 15d, 2w)")
            return Retention(hours=minimum_hours)
        hours = int(match.group("count")) * _HOURS_PER_UNIT[match.group("unit")]
        if hours < minimum_hours:
            self.problem(key, f"{value!r} is too short; allowed: at least {minimum_hours}h")
        elif whole_days and hours % 24:
            self.problem(key, f"{value!r} is not a whole number of days (the index period is 24h); allowed: e.g. 7d, 744h")
        return Retention(hours=hours)

    def percentage(self, key: str) -> float:
        value = self.raw(key)
        if value is None:
            return 100.0
        try:
            number = float(value)
        except ValueError:
            self.problem(key, f"{value!r} is not a number; allowed: above 0 and at most 100")
            return 100.0
        if not 0 < number <= 100:
            self.problem(key, f"{value!r} is out of range; allowed: above 0 and at most 100")
        return number

    def origins(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None:
            return ()
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            self.problem(key, f"{value!r} is not a list of strings; allowed: a YAML list of origins such as http://localhost:4200")
            return ()
        for origin in parsed:
            if origin == "*":
                self.problem(key, "'*' would let any web site send telemetry; list the app origins instead (scheme://host[:port])")
            elif not _ORIGIN.match(origin):
                self.problem(key, f"{origin!r} is not an origin; allowed: scheme://host[:port] with http or https, no path")
        return tuple(parsed)


def load_from_pulumi() -> Settings:
    """Read the current stack's config once (only called by __main__.py)."""
    import pulumi
    from pulumi.runtime.config import is_config_secret

    config = pulumi.Config()
    secret_keys = [key for key in SECRET_KEYS if is_config_secret(config.full_key(key))]
    return load_settings(config.get, pulumi.get_project(), pulumi.get_stack(), secret_keys)
