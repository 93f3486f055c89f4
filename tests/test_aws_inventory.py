"""The AWS platform's resources, compared with what the stack registered before the platform became
a package of small components (tests/fixtures/, written by `python -m tests.inventory`).

Two facts are proven for the prod stack file, the same with an existing VPC, and with the
self-hosted Prometheus:
- every custom resource has the same type, name and inputs as before: moving code into components
  changed parents and URNs only (the one intended difference);
- every resource whose URN changed carries an alias that resolves to its old URN, so `pulumi up`
  on a deployed stack updates it in place: no bucket, file system or workspace is replaced.

A change that alters prod resources on purpose rewrites tests/fixtures/aws-inventory.json with
`python -m tests.inventory --inputs`; its diff shows the reviewer what changes in prod. The URNs
before the split are never rewritten.
"""

from __future__ import annotations

import json

import pytest

from tests.harness import ProgramRun, project_path, run_program
from tests.inventory import INVENTORY_FIXTURE, URNS_FIXTURE, URNS_RECORDED_AS, VARIANTS, EngineUrns, custom_resources, inventory

# Where the new components sit: a resource's parents may change to these, nothing else.
NEW_COMPONENTS = {
    "observability:aws:Network",
    "observability:aws:Edge",
    "observability:aws:FargateService",
    "observability:aws:ServiceBucket",
    "observability:aws:ServiceFileSystem",
    "observability:aws:ManagedPrometheus",
}
# Resources whose replacement loses data: each must keep its URN or alias its old one.
DATA_STORES = {"aws:s3/bucket:Bucket", "aws:efs/fileSystem:FileSystem", "aws:amp/workspace:Workspace"}


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request) -> tuple[str, ProgramRun]:
    run = run_program("prod", VARIANTS[request.param])
    assert run.error is None, run.error
    return request.param, run


def _fixture(name: str):
    return json.loads(project_path(name).read_text())


def test_every_aws_resource_keeps_its_type_name_and_inputs(variant):
    name, run = variant
    before = {(e["type"], e["name"]): e["inputs"] for e in _fixture(INVENTORY_FIXTURE)[name]}
    after = {(e["type"], e["name"]): e["inputs"] for e in inventory(run)}
    assert sorted(after.keys() - before.keys()) == [], "resources that are new"
    assert sorted(before.keys() - after.keys()) == [], "resources that are gone"
    changed = sorted(key for key in before if before[key] != after[key])
    assert changed == [], f"inputs changed: {changed}"


def test_moved_resources_alias_their_old_urn(variant):
    name, run = variant
    old_urns = _fixture(URNS_FIXTURE)[URNS_RECORDED_AS.get(name, name)]
    urns = EngineUrns(run)
    unresolved, moved = [], 0
    for resource in custom_resources(run):
        old, new = old_urns.get(f"{resource.type}::{resource.name}"), urns.of(resource)
        if old is None or old == new:
            continue
        moved += 1
        if old not in urns.aliases(resource):
            unresolved.append(new)
        # Only a new component may have come between a resource and its old parent.
        added = set(_types(new)) - set(_types(old))
        assert added <= NEW_COMPONENTS, f"{new}: unexpected new parents {added - NEW_COMPONENTS}"
    assert unresolved == []
    assert moved > 0, "the split moved resources under new components"


def test_data_stores_resolve_to_their_deployed_urn(variant):
    name, run = variant
    old_urns = _fixture(URNS_FIXTURE)[URNS_RECORDED_AS.get(name, name)]
    urns = EngineUrns(run)
    stores = {f"{r.type}::{r.name}": r for r in custom_resources(run) if r.type in DATA_STORES}
    # Every data store deployed before the split; stores added since (the collectors' queue slots)
    # have no old URN and show in the inventory fixture instead.
    deployed = [key for key in old_urns if key.split("::")[0] in DATA_STORES]
    assert deployed, "the stack has data stores"
    for key in deployed:
        old, store = old_urns[key], stores[key]
        assert old == urns.of(store) or old in urns.aliases(store), urns.of(store)


def test_an_alias_check_catches_a_missing_alias(variant):
    """Negative control: without its aliases, a moved bucket would not resolve to the deployed one."""
    name, run = variant
    old_urns = _fixture(URNS_FIXTURE)[URNS_RECORDED_AS.get(name, name)]
    urns = EngineUrns(run)
    bucket = next(r for r in custom_resources(run) if r.type == "aws:s3/bucket:Bucket")
    old = old_urns[f"{bucket.type}::{bucket.name}"]
    assert old != urns.of(bucket) and old in urns.aliases(bucket)
    bucket.options = {**bucket.options, "aliases": []}
    assert old not in urns.aliases(bucket)


def _types(urn: str) -> list[str]:
    """The ancestors' types in an engine URN."""
    return urn.split("::")[2].split("$")[:-1]
