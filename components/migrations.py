"""Where resources of deployed stacks used to sit, and the aliases that keep them in place.

A resource's URN holds its parents' types; when code gives a resource another parent, `pulumi up`
would replace it unless it carries an alias to its old URN. The history lives here, not in the
constructors: one stack transformation (register(), called before the first resource) adds the
aliases as resources are registered.

An alias may go once every stack deployed before its commit has run `pulumi up` with the alias
(Pulumi's guidance: the state then holds the new URN). Removing one also retires its check in
tests/ (test_aws_inventory.py for the split, test_program_dev.py for the Grafana provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi


@dataclass(frozen=True)
class _Aliased:
    commit: str
    date: str

    @property
    def may_go(self) -> str:
        return f"after every stack deployed from before {self.commit} ({self.date}) has been updated (`pulumi up`)"


@dataclass(frozen=True)
class SplitOut(_Aliased):
    """A component put between resources and their parent: each custom resource directly under it
    sat under the component's nearest ancestor that is not split out itself."""

    type: str


@dataclass(frozen=True)
class Moved(_Aliased):
    """One resource given a new parent; before, it sat under old_parent_type::old_parent_name, a component at the stack's root."""

    type: str
    name: str
    old_parent_type: str
    old_parent_name: str


@dataclass(frozen=True)
class Kept:
    """A resource left under the parent that first made it, where today's code would make it
    elsewhere. No alias: a transformation may not change a parent (the Python SDK refuses), so the
    code that creates it asks kept_under()."""

    type: str
    name: str
    parent_type: str
    # The setting it holds for (metricsBackend); otherwise the resource sits where the code puts it.
    metrics_backend: str
    commit: str
    date: str
    may_go: str


# The AWS platform became a package of small components.
SPLIT_OUT = tuple(
    SplitOut(commit="c019e04", date="2026-12-02", type=type_)
    for type_ in (
        "observability:aws:Network",
        "observability:aws:Edge",
        "observability:aws:FargateService",
        "observability:aws:ServiceBucket",
        "observability:aws:ServiceFileSystem",
        "observability:aws:ManagedPrometheus",
    )
)
MOVED = (
    # To the stack's root, so `pulumi up --target` never refers to an untargeted parent.
    Moved(
        commit="f48bd59", date="2026-12-02", type="pulumi:providers:grafana", name="grafana",
        old_parent_type="observability:grafana:Content", old_parent_name="grafana-content",
    ),
)
KEPT = (
    # Made there by the metrics workspace's grants while Tempo remote-wrote span metrics (until
    # f855326); every amp stack since makes it there too.
    Kept(
        type="aws:iam/role:Role", name="tempo-task", parent_type="observability:platform:Aws", metrics_backend="amp",
        commit="f855326", date="2026-12-02",
        may_go="not by waiting (amp stacks keep making it there): moving it takes a Moved entry, an alias to the platform",
    ),
)


def kept_under(type_: str, name: str, metrics_backend: str) -> Optional[str]:
    """The type of the parent a resource stays under, if the table keeps it somewhere."""
    for kept in KEPT:
        if (kept.type, kept.name, kept.metrics_backend) == (type_, name, metrics_backend):
            return kept.parent_type
    return None


def register() -> None:
    """Every resource registered from now on gets the table's aliases. A resource takes the stack's
    transformations when it is made, and its children from it: call before the first resource."""
    pulumi.runtime.register_stack_transformation(_Aliases())


class _Aliases:
    """The stack transformation: learns each split-out component's old parent as it is registered."""

    def __init__(self) -> None:
        self._split_out = frozenset(s.type for s in SPLIT_OUT)
        self._moved = {(m.type, m.name): m for m in MOVED}
        # Each split-out component seen -> the nearest ancestor that is not split out (None: the stack).
        self._old_parent: dict[Optional[pulumi.Resource], Optional[pulumi.Resource]] = {}

    def __call__(self, args: pulumi.ResourceTransformationArgs) -> Optional[pulumi.ResourceTransformationResult]:
        parent = args.opts.parent
        if args.type_ in self._split_out:
            self._old_parent[args.resource] = self._old_parent.get(parent, parent)
            return None
        alias = None
        # Custom resources only: the components under split-out ones (ServiceFileSystem, AccessLogBucket) never sat elsewhere.
        if parent in self._old_parent and isinstance(args.resource, pulumi.CustomResource):
            alias = pulumi.Alias(parent=self._old_parent[parent])
        elif (args.type_, args.name) in self._moved:
            moved = self._moved[(args.type_, args.name)]
            alias = pulumi.Alias(parent=pulumi.create_urn(moved.old_parent_name, moved.old_parent_type))
        if alias is None:
            return None
        # Ahead of the SDK's own type aliases (generated classes add them): the order the engine has always been sent.
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(pulumi.ResourceOptions(aliases=[alias]), args.opts))
