"""YAML text for rendered configs (stable key order, block style, no aliases), and YAML read fast."""

from __future__ import annotations

from typing import Any

import yaml


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_NoAliases, sort_keys=False, default_flow_style=False, width=120)


# libyaml's parser where PyYAML was built with it (the wheels are): the same documents, parsed about
# ten times faster than the pure-Python one; the stack files, dashboards' metadata and alert rules
# are read at every `pulumi preview`.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)
