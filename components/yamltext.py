"""YAML text for rendered configs (stable key order, block style, no aliases), and YAML read fast."""

from __future__ import annotations

import re
from typing import Any

import yaml

# Plain scalars a YAML 1.2 reader (Go's yaml.v3, which the collector, Prometheus, Tempo and Loki
# use) takes for something other than a string: the core schema's null, booleans, integers (0o, 0x,
# and yaml.v3's 0b and underscores) and floats (1e3, .inf, .nan), and YAML 1.1's yes/no/on/off.
# PyYAML resolves by YAML 1.1 and would write "1e3" or "0o17" unquoted; these are quoted instead.
_NOT_A_STRING_IN_YAML_12 = re.compile(
    r"""^(?:
        ~|null|Null|NULL|true|True|TRUE|false|False|FALSE
      | y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF
      | [-+]?(?:\.inf|\.Inf|\.INF) | \.nan|\.NaN|\.NAN
      | [-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?
      | [-+]?0[bB][01_]+ | [-+]?0[oO][0-7_]+ | [-+]?0[xX][0-9a-fA-F_]+
    )$""",
    re.VERBOSE,
)


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if value == "" or _NOT_A_STRING_IN_YAML_12.match(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_NoAliases.add_representer(str, _string)


def to_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, width=120)


# libyaml's parser where PyYAML was built with it (the wheels are): the same documents, parsed about
# ten times faster than the pure-Python one; the stack files, dashboards' metadata and alert rules
# are read at every `pulumi preview`.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)
