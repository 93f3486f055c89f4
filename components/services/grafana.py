"""Grafana: the UI. Its content (data sources, folders, dashboards, alerting) is created through
its API by components/grafana/."""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import TYPE_CHECKING

import pulumi
import pulumi_random as random

from components.platforms.spec import DataVolume, HealthCheck, Platform, Port, PublicRoute, SecretValue, ServiceSpec
from components.settings import Settings

if TYPE_CHECKING:
    from components.plan import StackPlan

NAME = "grafana"
HTTP = Port("http", 3000)
# The image runs as grafana (472) in group root (0) and owns /var/lib/grafana that way.
UID, GID = 472, 0


def published_port(settings: Settings) -> Port:
    """Grafana's port as people reach it: on the host (docker) or through the load balancer,
    admitted only from the networks allowed for people (aws)."""
    return Port(HTTP.name, HTTP.container_port, host_port=settings.host_ports.grafana,
                public=PublicRoute(health_path="/api/health", for_people=True))


def grafana_env(settings: Settings, root_url: str, sigv4_auth: bool = False) -> dict[str, str]:
    """Grafana settings as GF_<SECTION>_<KEY> variables. sigv4_auth lets data sources sign their
    requests with the AWS credentials Grafana runs with (a managed metrics store)."""
    role = settings.grafana_anonymous_role
    return {
        **({} if "grafanaAdminUser" in settings.marked_secret else {"GF_SECURITY_ADMIN_USER": settings.grafana_admin_user}),
        "GF_SECURITY_DISABLE_GRAVATAR": "true",
        "GF_AUTH_ANONYMOUS_ENABLED": "true" if role else "false",
        **({"GF_AUTH_ANONYMOUS_ORG_ROLE": role} if role else {}),
        "GF_AUTH_DISABLE_LOGIN_FORM": "false",
        "GF_USERS_ALLOW_SIGN_UP": "false",
        "GF_SERVER_ROOT_URL": root_url,
        "GF_ANALYTICS_REPORTING_ENABLED": "false",
        "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
        "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
        "GF_NEWS_NEWS_FEED_ENABLED": "false",
        "GF_METRICS_BASIC_AUTH_USERNAME": METRICS_USER,
        **smtp_env(settings),
        **({"GF_AUTH_SIGV4_AUTH_ENABLED": "true"} if sigv4_auth else {}),
        **database_env(settings),
        **https_env(root_url),
    }


# Grafana's /metrics is served on its public port, so it asks for basic auth ([metrics]
# basic_auth_username/password, Grafana's configuration docs): a load-balancer path rule would not
# keep it internal, as Grafana decodes percent-encoded paths the rule compares undecoded.
METRICS_USER = "prometheus"


# HSTS lifetime: a year, the common production value (Grafana's default is a day); the whole domain
# is HTTPS-only (port 80 only redirects), so browsers may remember that.
HSTS_MAX_AGE_SECONDS = 365 * 24 * 3600


def https_env(root_url: str) -> dict[str, str]:
    """Behind HTTPS, the session cookie is sent over HTTPS only and browsers are told to use HTTPS
    for the domain (Grafana's security hardening guide: cookie_secure, strict_transport_security)."""
    if not root_url.startswith("https://"):
        return {}
    return {
        "GF_SECURITY_COOKIE_SECURE": "true",
        "GF_SECURITY_STRICT_TRANSPORT_SECURITY": "true",
        "GF_SECURITY_STRICT_TRANSPORT_SECURITY_MAX_AGE_SECONDS": str(HSTS_MAX_AGE_SECONDS),
    }


# Default ports of the external databases Grafana supports, when the URL names none.
DATABASE_PORTS = {"postgres": 5432, "mysql": 3306}


def egress_ports(settings: Settings) -> tuple[int, ...]:
    """What Grafana reaches outside the stack besides HTTPS (webhooks, SigV4 APIs): its SMTP server
    and its external database."""
    ports = set()
    if settings.smtp is not None:
        ports.add(int(settings.smtp.host.rsplit(":", 1)[1]))
    if settings.grafana_database_url is not None:
        parsed = urllib.parse.urlsplit(settings.grafana_database_url.value)
        ports.add(parsed.port or DATABASE_PORTS[parsed.scheme])
    return tuple(sorted(ports))


def database_env(settings: Settings) -> dict[str, str]:
    """An external database (its URL, with the password, is handed over as a secret) is reached
    over TLS; Grafana's default for Postgres is no TLS at all."""
    if settings.grafana_database_url is None:
        return {}
    scheme = settings.grafana_database_url.value.split("://", 1)[0]
    return {"GF_DATABASE_SSL_MODE": "require" if scheme == "postgres" else "true"}


def smtp_env(settings: Settings) -> dict[str, str]:
    """The mail server for e-mail alert notifications (its password is handed over as a secret)."""
    smtp = settings.smtp
    if smtp is None:
        return {}
    return {
        "GF_SMTP_ENABLED": "true",
        "GF_SMTP_HOST": smtp.host,
        "GF_SMTP_FROM_ADDRESS": smtp.from_address,
        "GF_SMTP_FROM_NAME": "Grafana alerts",
        **({"GF_SMTP_USER": smtp.user} if smtp.user and "smtpUser" not in settings.marked_secret else {}),
    }


def marked_secret_values(settings: Settings) -> tuple[SecretValue, ...]:
    """Settings the user stored encrypted that are not credentials by nature (a user name): handed
    over as secrets too, never as plain environment (Grafana reads any GF_ variable from a __FILE)."""
    values = []
    if "grafanaAdminUser" in settings.marked_secret:
        values.append(("GF_SECURITY_ADMIN_USER", settings.grafana_admin_user))
    if settings.smtp and settings.smtp.user and "smtpUser" in settings.marked_secret:
        values.append(("GF_SMTP_USER", settings.smtp.user))
    return tuple(SecretValue(env, pulumi.Output.secret(value), file_env=f"{env}__FILE") for env, value in values)


class Grafana(pulumi.ComponentResource):
    """Grafana with a generated admin password and a persistent database volume."""

    def __init__(
        self,
        plan: StackPlan,
        platform: Platform,
        metrics_password: pulumi.Output[str],
        depends_on: tuple = (),
        sigv4_auth: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """metrics_password: what its /metrics asks of Prometheus."""
        super().__init__("observability:components:Grafana", NAME, None, opts)
        settings = plan.settings
        password = random.RandomPassword(
            "grafana-admin-password",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The provider marks `result` secret; wrapping it again keeps that true whatever reads it.
        self.admin_password: pulumi.Output[str] = pulumi.Output.secret(password.result)
        self.admin_user: pulumi.Input[str] = (
            pulumi.Output.secret(settings.grafana_admin_user) if "grafanaAdminUser" in settings.marked_secret else settings.grafana_admin_user
        )
        # Prometheus scrapes its /metrics (with the metrics password).
        http = dataclasses.replace(published_port(settings), clients=plan.scrapers(NAME, HTTP))
        self.root_url = plan.grafana_root_url
        spec = ServiceSpec(
            name=NAME,
            image=settings.image(NAME),
            memory_mb=settings.memory_mb(NAME),
            cpu_units=settings.cpu_units(NAME),
            ports=(http,),
            env=grafana_env(settings, self.root_url, sigv4_auth),
            # The password applies only when Grafana creates its database (first start).
            secrets=(
                SecretValue("GF_SECURITY_ADMIN_PASSWORD", self.admin_password, file_env="GF_SECURITY_ADMIN_PASSWORD__FILE"),
                SecretValue("GF_METRICS_BASIC_AUTH_PASSWORD", metrics_password, file_env="GF_METRICS_BASIC_AUTH_PASSWORD__FILE"),
                *marked_secret_values(settings),
                *(
                    (SecretValue("GF_SMTP_PASSWORD", settings.smtp.password.output(), file_env="GF_SMTP_PASSWORD__FILE"),)
                    if settings.smtp and settings.smtp.password
                    else ()
                ),
                *(
                    (SecretValue("GF_DATABASE_URL", settings.grafana_database_url.output(), file_env="GF_DATABASE_URL__FILE"),)
                    if settings.grafana_database_url
                    else ()
                ),
            ),
            # SQLite, one writer (journal mode, not WAL): safe on a network file system. The owner is
            # the image's own (grafana:root), so a platform creating the volume hands it over.
            # With an external database the volume holds only caches and plugins: task storage will do.
            volumes=(
                DataVolume(
                    "data", "/var/lib/grafana", owner=f"{UID}:{GID}", shared_filesystem=settings.grafana_database_url is None
                ),
            ),
            health=HealthCheck(("curl", "-fsS", f"http://localhost:{HTTP.container_port}/api/health")),
            egress_ports=egress_ports(settings),
        )
        self.service = platform.run(spec, parent=self, depends_on=depends_on)
        self.url: pulumi.Output[str] = self.service.external_urls[HTTP.name]
        self.register_outputs({"url": self.url, "adminUser": self.admin_user, "adminPassword": self.admin_password})
