"""Who can reach what: Grafana's admin and anonymous visitors, the ports the docker target publishes
and the name people reach them by, and whether OTLP ingest demands a token."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Optional

from components.settings.model import ANONYMOUS_ROLES, HostPorts
from components.settings.reader import ConfigReader

_GRAFANA_USER = re.compile(r"\A[A-Za-z0-9._@-]{1,64}\Z")
_HOST = re.compile(r"\A(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z")
# HostPorts field -> the key that sets it.
_PORT_KEYS = {
    "grafana": "grafanaPort",
    "otlp_grpc": "otlpGrpcPort",
    "otlp_http": "otlpHttpPort",
    "collector_health": "collectorHealthPort",
    "prometheus": "prometheusPort",
    "otlp_browser": "otlpBrowserPort",
}


@dataclass(frozen=True)
class Exposure:
    grafana_admin_user: str
    # As given: "none", "Viewer" or "Editor" (or a refused value, already reported).
    anonymous_role: str
    host_ports: HostPorts
    otlp_require_token: bool
    external_host: str

    @property
    def grafana_anonymous_role(self) -> Optional[str]:
        return None if self.anonymous_role == "none" else self.anonymous_role


def read_exposure(reader: ConfigReader, host_address: str) -> Exposure:
    admin_user = reader.pattern("grafanaAdminUser", _GRAFANA_USER, "1 to 64 letters, digits or . _ @ -")
    role = reader.choice("grafanaAnonymousRole", ANONYMOUS_ROLES, refused={"Admin": "anonymous visitors must never be Admin"})
    ports = {key: reader.port(key) for key in _PORT_KEYS.values()}
    reader.distinct_ports(ports)
    require_token = reader.boolean("otlpRequireToken")
    external_host = reader.optional_pattern("externalHost", _HOST, "a host name or IPv4 address, without scheme or port")
    if not external_host:
        external_host = "localhost" if host_address in ("127.0.0.1", "0.0.0.0") else host_address
    return Exposure(
        grafana_admin_user=admin_user,
        anonymous_role=role,
        host_ports=HostPorts(**{field: ports[key] for field, key in _PORT_KEYS.items()}),
        otlp_require_token=require_token,
        external_host=external_host,
    )


def refuse_open_doors(reader: ConfigReader, target: str, host_address: str, exposure: Exposure) -> None:
    """On docker: published ports beyond this machine with no authentication in front, unless accepted."""
    accept_open_doors = reader.boolean("allowUnauthenticatedNetworkAccess")
    if target != "docker" or not _beyond_this_machine(host_address):
        return
    # A value refused already (otlpRequireToken: "true ") is reported as what it is, not as false.
    token_off = not exposure.otlp_require_token and not reader.has_problem("otlpRequireToken")
    open_doors = [
        *(["grafanaAnonymousRole is Editor (anyone who reaches the host edits dashboards and alerts)"] if exposure.anonymous_role == "Editor" else []),
        *(["otlpRequireToken is false (anyone who reaches the host sends telemetry)"] if token_off else []),
    ]
    if open_doors and not accept_open_doors:
        reader.problem(
            "hostAddress",
            f"is {host_address}, beyond this machine, while " + " and ".join(open_doors)
            + "; Docker-published ports bypass the host's firewall. Allowed: 127.0.0.1, or set grafanaAnonymousRole "
            "to Viewer or none and otlpRequireToken to true, or accept it with allowUnauthenticatedNetworkAccess: true",
        )


def refuse_public_access(reader: ConfigReader, exposure: Exposure) -> None:
    """The aws target serves Grafana and OTLP ingest to the internet: neither may be open."""
    if exposure.anonymous_role != "none":
        reader.problem("grafanaAnonymousRole", f"is {exposure.anonymous_role!r}; the aws target serves Grafana publicly, so it must be 'none'")
    if not exposure.otlp_require_token and not reader.has_problem("otlpRequireToken"):
        reader.problem("otlpRequireToken", "is false; the aws target takes OTLP from the internet, so it must be true")


def _beyond_this_machine(address: str) -> bool:
    try:
        return not ipaddress.IPv4Address(address).is_loopback
    except ValueError:
        return False  # already reported as not an address
