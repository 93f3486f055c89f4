"""What the entry tier does to what apps send before anything else sees it: health checks dropped,
credentials and personal data scrubbed, the stack's namespace and environment added."""

from __future__ import annotations

from typing import Any

from components.settings import Settings

# Requests that only say "I am alive" or "scrape me". Matched on every attribute that carries the
# path: http.route (stable and old), url.path (stable), http.target (old, Python's default).
HEALTH_PATHS = ("/health", "/healthz", "/healthcheck", "/ready", "/readyz", "/livez", "/ping", "/metrics")
PATH_ATTRIBUTES = ("http.route", "url.path", "http.target")

# Attributes that carry credentials or personal data, deleted from spans and logs. Python
# instrumentations name captured headers http.request.header.<name> with '-' turned into '_'.
SENSITIVE_ATTRIBUTE_KEYS = ("user.email", "enduser.email", "db.statement.parameters")
SENSITIVE_ATTRIBUTE_PATTERNS = (
    r"(?i)^http\.(request|response)\.header\.(authorization|proxy[-_]authorization|cookie|set[-_]cookie|x[-_]api[-_]key)$",
    r"^db\.query\.parameter\..+$",
)


def intake_processors(settings: Settings) -> dict[str, Any]:
    return {
        "filter/health": {"error_mode": "ignore", "traces": {"span": _health_span_conditions()}},
        "attributes/scrub": {
            "actions": [
                *({"key": key, "action": "delete"} for key in SENSITIVE_ATTRIBUTE_KEYS),
                *({"pattern": pattern, "action": "delete"} for pattern in SENSITIVE_ATTRIBUTE_PATTERNS),
            ]
        },
        # insert: an app that states its own namespace or environment keeps it.
        "resource": {
            "attributes": [
                {"key": "service.namespace", "value": settings.service_namespace, "action": "insert"},
                {"key": "deployment.environment.name", "value": settings.environment, "action": "insert"},
            ]
        },
    }


def _health_span_conditions() -> list[str]:
    paths = "|".join(p.lstrip("/") for p in HEALTH_PATHS)
    by_attribute = [f'IsMatch(attributes["{a}"], "^/({paths})/?$")' for a in PATH_ATTRIBUTES]
    # The ASGI middleware's own child spans ("GET /health http send") carry no path attribute.
    by_name = f'IsMatch(name, "^[A-Z]+ /({paths})/?( http (send|receive))?$")'
    return [*by_attribute, by_name]
