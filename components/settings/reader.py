"""Reading config values one key at a time: each reader parses a raw string, records a problem that
names the key and what is allowed instead of raising, and returns a usable value, so every problem
of a stack file is reported at once."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Collection
from typing import Optional

from components.origins import ACCEPTED as ORIGINS_ACCEPTED
from components.origins import is_ipv4_address, origin_problem
from components.settings.model import Retention, Secret


class ProblemsError(ValueError):
    """Every problem found in one input, one line each, under a heading that says which input."""

    heading = "invalid input"

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"{self.heading}:\n" + "\n".join(f"  - {p}" for p in problems))


class SettingsError(ProblemsError):
    """One line per invalid config key."""

    heading = "invalid stack configuration"


# Every pattern here matches a whole value (\A...\Z, and fullmatch): `$` would also match before a
# final line break, and "obs.example\n" would pass on into host headers, URLs and image names.
_IMAGE = re.compile(
    # A registry's :port only before a '/', so "loki:3" reads as the tag 3, not a port.
    r"\A(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[0-9]+(?=/))?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?\Z"
)
# What a version given where an image belongs looks like ("13.2.0" instead of grafana/grafana:13.2.0).
_BARE_VERSION = re.compile(r"\Av?[0-9]+(?:\.[0-9]+)*(?:[-_+][0-9A-Za-z._+-]*)?\Z")
# A tag that names one release: major.minor.patch (or longer), an optional leading v and suffix.
# Tags such as main, stable, edge, 3 or 3.0 move to new images; policy/rules.py holds the same rule.
VERSION_TAG = re.compile(r"\Av?[0-9]+(?:\.[0-9]+){2,}(?:[-_+.][0-9A-Za-z][0-9A-Za-z._+-]*)?\Z")
_RETENTION = re.compile(r"\A(?P<count>[1-9][0-9]*)(?P<unit>[hdw])\Z")
# Prometheus, Tempo and Loki read retention as a Go time.Duration (int64 nanoseconds): at most
# 9223372036854775807 ns, 2562047 whole hours.
MAX_RETENTION_HOURS = 2562047
_HOURS_PER_UNIT = {"h": 1, "d": 24, "w": 24 * 7}
_SHORT_DURATION = re.compile(r"\A(?P<count>[1-9][0-9]*)(?P<unit>ms|s)\Z")
_MS_PER_UNIT = {"ms": 1, "s": 1000}
EMAIL = re.compile(r"\A[^@\s,;]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\Z")
HTTPS_URL = re.compile(r"\Ahttps://[A-Za-z0-9.-]+(:[0-9]{1,5})?/\S*\Z")
_WHOLE_NUMBER = re.compile(r"\A-?[0-9]+\Z")
_DECIMAL = re.compile(r"\A(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")
_CIDR = re.compile(r"\A(?P<address>[0-9]{1,3}(?:\.[0-9]{1,3}){3})/[0-9]{1,2}\Z")


def stray_characters(value: str) -> Optional[str]:
    """What a value carries besides its text, said plainly (a line break pasted along, a space), or None."""
    if value.endswith(("\n", "\r")):
        return "ends with a line break"
    if value.startswith(("\n", "\r")):
        return "starts with a line break"
    if value != value.strip():
        return "has a space or tab at an end"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "has a control character (a line break or tab) inside"
    return None


def what_is_wrong(value: str, otherwise: str) -> str:
    """The stray characters of a value if it has any, else what the caller says is wrong."""
    return stray_characters(value) or otherwise


def cidr_problem(value: str) -> Optional[str]:
    """Why value is not an IPv4 CIDR block a.b.c.d/n with its host bits zero (strict), or None."""
    stray = stray_characters(value)
    if stray:
        return stray
    address, slash, suffix = value.partition("/")
    if not slash and is_ipv4_address(value):
        return "has no prefix length (/n)"
    if "." in suffix and is_ipv4_address(address):
        try:
            return f"gives a netmask, not a prefix length: write {ipaddress.IPv4Network(value, strict=False)}"
        except ValueError:
            return f"gives {suffix!r} after the '/', which is neither a prefix length nor a netmask"
    if not _CIDR.fullmatch(value):
        return "is not of the form a.b.c.d/n"
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        return "is not a.b.c.d/n with each of a, b, c, d from 0 to 255 and n from 0 to 32"
    if str(network.network_address) != address:
        return f"has host bits set (the block is {network})"
    return None


class ConfigReader:
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
        if not regex.fullmatch(value):
            stray = stray_characters(value)
            self.problem(key, f"is not valid (value not shown){': it ' + stray if stray else ''}; allowed: {allowed}")
        return Secret(value)

    def emails(self, key: str) -> tuple[str, ...]:
        addresses = self.string_list(key, "oncall@example.com") or []
        for address in addresses:
            if not EMAIL.fullmatch(address):
                self.problem(key, f"{address!r} {what_is_wrong(address, 'is not an e-mail address')}; allowed: name@example.com")
        return tuple(addresses)

    def choice(self, key: str, allowed: tuple[str, ...], refused: Optional[dict[str, str]] = None) -> str:
        value = self.raw(key)
        if value is None:
            return allowed[0]
        if refused and value in refused:
            self.problem(key, f"{value!r} is refused: {refused[value]}; allowed: {', '.join(allowed)}")
        elif value not in allowed:
            self.problem(key, f"{value!r} {what_is_wrong(value, 'is not allowed')}; allowed: {', '.join(allowed)}")
        return value

    def pattern(self, key: str, regex: re.Pattern[str], allowed: str) -> str:
        value = self.raw(key)
        if value is not None and not regex.fullmatch(value):
            self.problem(key, f"{self._shown(key, value)} {what_is_wrong(value, 'is not valid')}; allowed: {allowed}")
        return value or ""

    def _shown(self, key: str, value: str) -> str:
        """The value as a message quotes it; a key the stack stores encrypted is never quoted."""
        return "the value (not shown)" if key in self._secret_keys else repr(value)

    def ip_address(self, key: str) -> str:
        value = self.raw(key)
        if value is None:
            return ""
        if not is_ipv4_address(value):
            wrong = what_is_wrong(value, "is not an IPv4 address")
            self.problem(key, f"{value!r} {wrong}; use 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)")
        return value

    def optional_pattern(self, key: str, regex: re.Pattern[str], allowed: str) -> str:
        """Empty is allowed (the default); anything else must match."""
        value = self._get(key) or ""
        if value and not regex.fullmatch(value):
            self.problem(key, f"{self._shown(key, value)} {what_is_wrong(value, 'is not valid')}; allowed: {allowed}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if value is None:
            return False
        if value not in ("true", "false"):
            stray = stray_characters(value)
            self.problem(key, f"{value!r} is not true or false{': it ' + stray if stray else ''}; allowed: true, false")
        return value == "true"

    def string_list(self, key: str, example: str) -> Optional[list[str]]:
        value = self._get(key)
        if value is None or value == "":
            return []
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            # A value that is no JSON at all came as a plain string (`key: subnet-1` in a stack file).
            what = "is a string, not a list of strings" if parsed is None or isinstance(parsed, str) else "is not a list of strings"
            self.problem(key, f"{value!r} {what}; allowed: a YAML list of strings such as [{example}]")
            return None
        duplicates = sorted({item for item in parsed if parsed.count(item) > 1})
        if duplicates:
            self.problem(key, f"lists {', '.join(map(repr, duplicates))} more than once; give each once")
        return parsed

    def has_problem(self, key: str) -> bool:
        return any(p.startswith(f"{key}:") for p in self._problems)

    def id_list(self, key: str, regex: re.Pattern[str], allowed: str) -> tuple[str, ...]:
        items = self.string_list(key, "subnet-0123456789abcdef0") or []
        for item in items:
            if not regex.fullmatch(item):
                self.problem(key, f"{item!r} {what_is_wrong(item, 'is not valid')}; allowed: {allowed}")
        return tuple(items)

    def ipv4_cidr_list(self, key: str, why_ipv4: str) -> tuple[str, ...]:
        """IPv4 CIDR blocks, each a.b.c.d/n with its host bits zero (ipaddress's strict=True)."""
        items = self.string_list(key, "203.0.113.0/24") or []
        allowed = "IPv4 CIDR blocks a.b.c.d/n with the host bits zero, such as 203.0.113.0/24 (203.0.113.7/32 for one address)"
        for item in items:
            if ":" in item and not stray_characters(item) and _is_ipv6_network(item):
                self.problem(key, f"{item!r} is an IPv6 network; {why_ipv4}; allowed: {allowed}")
            elif problem := cidr_problem(item):
                one = f", for that one address {item}/32" if problem.startswith("has no prefix") else ""
                self.problem(key, f"{item!r} is not a network: it {problem}{one}; allowed: {allowed}")
        return tuple(items)

    def network(self, key: str, min_prefix: int, max_prefix: int, why_prefix: str = "") -> Optional[ipaddress.IPv4Network]:
        """An IPv4 CIDR block a.b.c.d/n, host bits zero, with a prefix length from min_prefix to max_prefix."""
        value = self.raw(key)
        if value is None:
            return None
        problem = cidr_problem(value)
        if problem:
            self.problem(key, f"{value!r} is not an IPv4 network: it {problem}; allowed: a CIDR block a.b.c.d/n such as 10.40.0.0/16")
            return None
        network = ipaddress.IPv4Network(value)
        if not min_prefix <= network.prefixlen <= max_prefix:
            self.problem(key, f"{value!r} has a /{network.prefixlen} prefix; allowed: /{min_prefix} to /{max_prefix}{why_prefix}")
        return network

    def integer(self, key: str, minimum: int, maximum: int) -> int:
        value = self.raw(key)
        if value is None:
            return minimum
        if not _WHOLE_NUMBER.fullmatch(value):
            self.problem(key, f"{value!r} {what_is_wrong(value, 'is not a whole number')}; allowed: {minimum} to {maximum}")
            return minimum
        number = int(value)
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
        match = _IMAGE.fullmatch(value)
        if not match:
            wrong = what_is_wrong(value, "is not an image reference")
            self.problem(key, f"{value!r} {wrong}; allowed: repository:tag or repository@sha256:digest")
        elif not match.group("tag") and not match.group("digest") and _BARE_VERSION.fullmatch(value):
            self.problem(key, f"{value!r} has no repository: an image is <repository>:<tag>, e.g. <repository>:{value}")
        elif not match.group("tag") and not match.group("digest"):
            self.problem(key, f"{value!r} has no tag; pin a version, e.g. {value}:1.2.3")
        elif match.group("tag") == "latest" and not match.group("digest"):
            self.problem(key, f"{value!r} uses 'latest'; pin a version tag or a digest")
        elif match.group("tag") and not match.group("digest") and not VERSION_TAG.fullmatch(match.group("tag")):
            self.problem(
                key,
                f"{value!r} has the tag {match.group('tag')!r}, which is not a full version and may move; "
                "allowed: a version tag such as 1.2.3 or v1.2.3 (a suffix like -alpine is fine), or a digest (@sha256:...)",
            )
        return value

    def retention(self, key: str, minimum_hours: int, whole_days: bool) -> Retention:
        value = self.raw(key)
        if value is None:
            return Retention(hours=minimum_hours)
        match = _RETENTION.fullmatch(value)
        if not match:
            self.problem(key, f"{value!r} {what_is_wrong(value, 'is not a retention')}; allowed: a whole number followed by h, d or w (e.g. 72h, 15d, 2w)")
            return Retention(hours=minimum_hours)
        hours = int(match.group("count")) * _HOURS_PER_UNIT[match.group("unit")]
        if hours < minimum_hours:
            self.problem(key, f"{value!r} is too short; allowed: at least {minimum_hours}h")
        elif hours > MAX_RETENTION_HOURS:
            self.problem(
                key,
                f"{value!r} is longer than the stores can read: they parse retention as a Go duration, which ends at "
                f"{MAX_RETENTION_HOURS}h (about 292 years); allowed: up to {MAX_RETENTION_HOURS}h",
            )
        elif whole_days and hours % 24:
            self.problem(key, f"{value!r} is not a whole number of days (the index period is 24h); allowed: e.g. 7d, 744h")
        return Retention(hours=hours)

    def short_duration_ms(self, key: str, maximum_ms: int, why_maximum: str) -> int:
        value = self.raw(key)
        if value is None:
            return maximum_ms
        match = _SHORT_DURATION.fullmatch(value)
        if not match:
            self.problem(key, f"{value!r} {what_is_wrong(value, 'is not a duration')}; allowed: a whole number followed by ms or s (e.g. 500ms, 2s)")
            return maximum_ms
        ms = int(match.group("count")) * _MS_PER_UNIT[match.group("unit")]
        if ms > maximum_ms:
            self.problem(key, f"{value!r} is too long; allowed: at most {maximum_ms}ms ({why_maximum})")
        return ms

    def percentage(self, key: str) -> float:
        value = self.raw(key)
        if value is None:
            return 100.0
        if not _DECIMAL.fullmatch(value):
            self.problem(key, f"{value!r} {what_is_wrong(value, 'is not a number')}; allowed: above 0 and at most 100")
            return 100.0
        number = float(value)
        if not 0 < number <= 100:
            self.problem(key, f"{value!r} is out of range; allowed: above 0 and at most 100")
        return number

    def origins(self, key: str) -> tuple[str, ...]:
        origins = self.string_list(key, "http://localhost:4200") or []
        for origin in origins:
            stray = stray_characters(origin)
            problem = f"{origin!r} {stray}; allowed: {ORIGINS_ACCEPTED}" if stray else origin_problem(origin)
            if problem:
                self.problem(key, problem)
        return tuple(origins)


def _is_ipv6_network(value: str) -> bool:
    try:
        return ipaddress.ip_network(value, strict=False).version == 6
    except ValueError:
        return False
