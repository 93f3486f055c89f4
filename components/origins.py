"""Browser origins the collector's CORS may admit, and the wildcards that would admit any site.

The collector's CORS (confighttp, by rs/cors v1.11) matches an origin with one `*` as a plain
prefix and suffix around it ("0 or more characters"); a second `*` is compared literally. So
`https://*` admits every https site, `https://*opendeck.example` admits `https://evilopendeck.example`
and `https://*.co.uk` every British company. What stays allowed: exact origins, any port of one
named host (`http://localhost:*`), and every subdomain of a domain of your own (`https://*.opendeck.example`),
where "of your own" means below a registrable domain of the Public Suffix List.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Optional

ACCEPTED = "scheme://host[:port] with http or https, no path; '*' only as the port or as the first label of your own domain (https://*.example.com)"

# Whole values only (\A...\Z with fullmatch): `$` would match before a final line break too.
_ORIGIN = re.compile(r"\A(?P<scheme>https?)://(?P<host>[^/:?#@\[\]\s]+)(?::(?P<port>[^/?#@\s]*))?\Z", re.IGNORECASE)
_LABEL = re.compile(r"\A(?!-)[a-z0-9-]{1,63}(?<!-)\Z", re.IGNORECASE)


def origin_problem(origin: str) -> Optional[str]:
    """Why this origin must not be configured, or None when it is fine."""
    if "*" in origin and origin.replace("*", "").rstrip(":/") in ("", "http", "https", "http:", "https:"):
        return f"{origin!r} would let any web site send telemetry; list the app origins instead ({ACCEPTED})"
    # The authority: what lies between :// and the first /, ? or #.
    authority = re.split(r"[/?#]", origin.split("://", 1)[-1], maxsplit=1)[0]
    if "@" in authority:
        return f"{origin!r} has credentials (user:password@); a browser's Origin never carries them; allowed: {ACCEPTED}"
    if "[" in authority or authority.count(":") > 1:
        return f"{origin!r} looks like an IPv6 origin; IPv6 origins are not supported, use a host name or an IPv4 address; allowed: {ACCEPTED}"
    match = _ORIGIN.fullmatch(origin)
    if not match:
        return f"{origin!r} is not an origin; allowed: {ACCEPTED}"
    host, port = match.group("host"), match.group("port")
    if origin.count("*") > 1:
        return f"{origin!r} has more than one '*'; the collector honours only the first, so list the origins instead; allowed: {ACCEPTED}"
    if port is not None and port != "*" and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"{origin!r} has port {port!r}; allowed: 1 to 65535, or '*' for any port of that host"
    if host == "*" or host.startswith("*:"):
        return f"{origin!r} would let any web site send telemetry; allowed: {ACCEPTED}"
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    if "*" in name:
        return f"{origin!r} has '*' inside a name, which matches other people's domains too; allowed: {ACCEPTED}"
    if is_ipv4_address(name):
        return f"{origin!r} puts '*' in an IP address; allowed: {ACCEPTED}" if wildcard else None
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        return f"{origin!r} has no valid host name; allowed: {ACCEPTED}"
    if wildcard and _public_suffixes().is_public(name.lower()):
        return (
            f"{origin!r} puts '*' directly under the public suffix {name!r}, which admits every site registered there; "
            f"allowed: '*' as the first label of your own domain, e.g. https://*.app.{name}"
        )
    return None


def is_ipv4_address(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=1)
def _public_suffixes():
    """The Public Suffix List bundled with the package (ICANN and private sections; a name under an
    unknown top-level domain counts as public). Loaded only for wildcard origins: it costs about
    a quarter of a second, and settings are read at every preview."""
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()
