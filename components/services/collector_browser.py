"""The collector's public route for web pages (where apps need a token): its receiver, limits and
pipelines, which collector_config.py adds to the entry tier."""

from __future__ import annotations

from typing import Any

from components.platforms.spec import Port
from components.settings import Settings

# Browsers on prod: OTLP/HTTP without a token (a web page keeps no secret), on a port of its own.
BROWSER_OTLP = Port("otlp-browser", 4319)


# The browser receiver serves these paths itself, so the load balancer routes them unchanged.
# Traces and logs only: it is in no metrics pipeline, so a metrics request finds no handler (404).
BROWSER_PATH_PREFIX = "/browser/"
BROWSER_TRACES_PATH = f"{BROWSER_PATH_PREFIX}v1/traces"
BROWSER_LOGS_PATH = f"{BROWSER_PATH_PREFIX}v1/logs"
# A browser batch of a hundred spans is well under this; the limit holds for the decompressed body
# too (confighttp max_request_body_size; larger requests get 400).
BROWSER_MAX_BODY_BYTES = 512 * 1024
# Browsers give way first: their memory limiter refuses data before the servers' one does.
BROWSER_MEMORY_LIMIT_PERCENTAGE = 60
BROWSER_MAX_ATTRIBUTES = 64
BROWSER_MAX_VALUE_CHARS = 1024
BROWSER_MAX_EVENT_VALUE_CHARS = 4096  # exception.stacktrace
BROWSER_SIGNALS = ("traces", "logs")
BROWSER_FORWARD = "forward/browser"


def has_browser_route(settings: Settings) -> bool:
    """Web pages get a route of their own where server SDKs need a token, and only where some
    origin may send (corsAllowedOrigins): with none, no page could, and the route would only be a
    token-free door."""
    return settings.otlp_require_token and bool(settings.cors_allowed_origins)


def browser_ingest(settings: Settings, spike_limit_percentage: int) -> dict[str, Any]:
    """A public route for web pages where server SDKs need a token: its own OTLP/HTTP receiver
    (no token; CORS only for corsAllowedOrigins; small bodies; traces and logs only) and its own
    pipelines, which limit what a page may send and then hand it to the main pipelines (forward
    connector), so browser spans are filtered, scrubbed, sampled and stored like every other.
    CORS binds browsers only: anything else can post here too, which is why the limits exist."""
    url_attributes = ("url.full", "http.url")
    # OTTL functions of the transform processor: limit() keeps at most N attributes,
    # truncate_all() shortens every string value; query strings and fragments carry tokens.
    span_statements = [
        *(f'replace_pattern(span.attributes["{a}"], "[?#].*$", "")' for a in url_attributes),
        f"limit(span.attributes, {BROWSER_MAX_ATTRIBUTES}, [])",
        f"truncate_all(span.attributes, {BROWSER_MAX_VALUE_CHARS})",
    ]
    resource_statements = [
        f'limit(resource.attributes, {BROWSER_MAX_ATTRIBUTES}, ["service.name"])',
        f"truncate_all(resource.attributes, {BROWSER_MAX_VALUE_CHARS})",
    ]
    return {
        "receivers": {
            "otlp/browser": {
                "protocols": {
                    "http": {
                        "endpoint": f"0.0.0.0:{BROWSER_OTLP.container_port}",
                        "traces_url_path": BROWSER_TRACES_PATH,
                        "logs_url_path": BROWSER_LOGS_PATH,
                        "max_request_body_size": BROWSER_MAX_BODY_BYTES,
                        "cors": {"allowed_origins": list(settings.cors_allowed_origins), "max_age": 7200},
                    }
                }
            }
        },
        "processors": {
            "memory_limiter/browser": {
                "check_interval": "1s",
                "limit_percentage": BROWSER_MEMORY_LIMIT_PERCENTAGE,
                "spike_limit_percentage": spike_limit_percentage,
            },
            "transform/browser": {
                "error_mode": "ignore",
                "trace_statements": [
                    {"statements": resource_statements},
                    {"statements": span_statements},
                    {"statements": [
                        f"limit(spanevent.attributes, {BROWSER_MAX_ATTRIBUTES}, [])",
                        f"truncate_all(spanevent.attributes, {BROWSER_MAX_EVENT_VALUE_CHARS})",
                    ]},
                ],
                "log_statements": [
                    {"statements": resource_statements},
                    {"statements": [
                        f"limit(log.attributes, {BROWSER_MAX_ATTRIBUTES}, [])",
                        f"truncate_all(log.attributes, {BROWSER_MAX_VALUE_CHARS})",
                        f"set(log.body, Substring(log.body, 0, {BROWSER_MAX_EVENT_VALUE_CHARS}))"
                        f" where IsString(log.body) and Len(log.body) > {BROWSER_MAX_EVENT_VALUE_CHARS}",
                    ]},
                ],
            },
        },
        "connectors": {BROWSER_FORWARD: {}},
        "pipelines": {
            f"{signal}/browser": {
                "receivers": ["otlp/browser"],
                "processors": ["memory_limiter/browser", "transform/browser"],
                "exporters": [BROWSER_FORWARD],
            }
            for signal in BROWSER_SIGNALS
        },
    }
