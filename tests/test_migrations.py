"""The migrations table's stack transformation on a small program under mocks: which resources the
SDK hands it, and how its alias joins the ones a resource has already."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
from pulumi.runtime.settings import ROOT
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components import migrations
from tests.harness import PROJECT, ProgramRun, RecordingMocks, _record_options
from tests.inventory import EngineUrns

STACK = f"urn:pulumi:dev::{PROJECT}::"


def _run(program: Callable[[], None]) -> ProgramRun:
    run = ProgramRun()
    pulumi.runtime.set_all_config({})
    ROOT.set(None)
    pulumi.runtime.set_mocks(RecordingMocks(run), project=PROJECT, stack="dev", preview=False)
    _record_options(run)
    _sync_await(run_pulumi_func(program))
    return run


def _component(type_: str, name: str, parent: pulumi.Resource | None = None) -> pulumi.ComponentResource:
    return pulumi.ComponentResource(type_, name, None, pulumi.ResourceOptions(parent=parent))


def _thing(name: str, parent: pulumi.Resource, aliases: list[pulumi.Alias] | None = None) -> pulumi.CustomResource:
    return pulumi.CustomResource("test:index:Thing", name, {}, pulumi.ResourceOptions(parent=parent, aliases=aliases))


def _program() -> None:
    # Made before register(): a resource takes the stack's transformations when it is made, and
    # its children take them from it.
    early = _component("test:index:Early", "early")
    migrations.register()
    late_edge = _component("observability:aws:Edge", "edge", parent=early)
    _thing("under-early", late_edge)
    service = _component("observability:components:Tempo", "tempo")
    fargate = _component("observability:aws:FargateService", "tempo", parent=service)
    _thing("log-group", fargate)
    files = _component("observability:aws:ServiceFileSystem", "tempo-data", parent=fargate)
    _thing("file-system", files, aliases=[pulumi.Alias(type_="test:old:Thing")])
    _component("test:index:NewHere", "new-here", parent=fargate)


def test_custom_resources_under_split_out_components_alias_the_nearest_other_ancestor():
    run = _run(_program)
    urns = EngineUrns(run)
    by_name = {r.name: r for r in run.resources}
    tempo = "observability:components:Tempo"
    assert urns.aliases(by_name["log-group"]) == {f"{STACK}{tempo}$test:index:Thing::log-group"}
    # Through two split-out components; the resource's own alias kept (its spec names no parent:
    # the engine reads that as the current one), the table's first.
    table, own = by_name["file-system"].options["aliases"]
    assert (own["type"], own["parentUrn"], own["noParent"]) == ("test:old:Thing", "", False)
    (service,) = run.of_type(tempo)
    assert (table["type"], table["parentUrn"]) == ("", service.urn)
    assert f"{STACK}{tempo}$test:index:Thing::file-system" in urns.aliases(by_name["file-system"])
    # Components under split-out ones were never elsewhere: no alias.
    assert by_name["new-here"].options["aliases"] == []
    assert by_name["tempo-data"].options["aliases"] == []
    # Under a parent made before register(), the transformation never runs.
    assert by_name["under-early"].options["aliases"] == []


def test_the_kept_role_is_the_only_entry_for_its_backend():
    assert migrations.kept_under("aws:iam/role:Role", "tempo-task", "amp") == "observability:platform:Aws"
    assert migrations.kept_under("aws:iam/role:Role", "tempo-task", "prometheus") is None
    assert migrations.kept_under("aws:iam/role:Role", "loki-task", "amp") is None
