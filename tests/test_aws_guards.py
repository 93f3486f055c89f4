"""AWS options that guard the prod stack, under the mocks of tests/harness.py (eu-west-1, 3 zones)."""

from __future__ import annotations

import pulumi
import pytest

from components.settings import SettingsError
from components.settings import load_stack_settings as settings_for
from tests.harness import MOCK_REGION, run_program, unwrap


@pytest.mark.parametrize("zones", ["4", "6"])
def test_more_zones_than_the_region_has_are_refused_before_any_resource(zones):
    run = run_program("prod", {"availabilityZones": zones})
    assert isinstance(run.error, pulumi.RunError), run.error
    message = str(run.error)
    assert f"availabilityZones: {zones} asked" in message
    assert f"{MOCK_REGION} has 3 available zones ({MOCK_REGION}a, {MOCK_REGION}b, {MOCK_REGION}c)" in message
    assert "allowed: 2 to 3" in message
    assert run.resources == []


def test_as_many_zones_as_the_region_has_make_a_subnet_in_each():
    run = run_program("prod", {"availabilityZones": "3"})
    assert run.error is None, run.error
    zones = {s.inputs["availabilityZone"] for s in run.of_type("aws:ec2/subnet:Subnet")}
    assert zones == {f"{MOCK_REGION}{z}" for z in "abc"}


def test_an_existing_vpc_asks_for_no_zones():
    given = {
        "vpcId": "vpc-0a1b2c3d4e5f60718",
        "publicSubnetIds": '["subnet-0a0000000000000a1", "subnet-0a0000000000000a2"]',
        # Ignored with a given VPC: its subnets say where the tasks run.
        "availabilityZones": "6",
        "natGateways": "1",
    }
    run = run_program("prod", given)
    assert run.error is None, run.error


def test_docker_stacks_take_the_default_rate_limit_and_refuse_any_other():
    """browserRateLimit's default (on) means nothing on docker (no load balancer), so it is no
    setting of a docker stack; any other value there is refused, naming the key."""
    assert settings_for("dev").target == "docker"
    assert settings_for("dev", browserRateLimit="0").target == "docker"
    with pytest.raises(SettingsError, match="browserRateLimit: is an AWS WAF rule on the load balancer, so it needs target aws"):
        settings_for("dev", browserRateLimit="1000")


LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"


def _versioning(run) -> dict[str, str]:
    types = {r.type for r in run.resources if r.type.startswith("aws:s3/bucketVersioning")}
    return {r.name: unwrap(r.inputs)["versioningConfiguration"]["status"] for t in types for r in run.of_type(t)}


@pytest.mark.parametrize("overrides", [{}, {"collectorMaxTasks": "4", "metricsBackend": "amp"}], ids=["default", "scaled-out-amp"])
def test_tempo_and_loki_buckets_keep_overwritten_and_deleted_objects_for_7_days(overrides):
    """A compromised Tempo or Loki task may delete objects (its role holds DeleteObject, not
    DeleteObjectVersion): the bucket keeps the noncurrent version for a week."""
    run = run_program("prod", overrides)
    assert run.error is None, run.error
    assert _versioning(run) == {"tempo-bucket": "Enabled", "loki-bucket": "Enabled"}
    for service in ("tempo", "loki"):
        rules = {r["id"]: r for r in unwrap(run.one(LIFECYCLE, f"{service}-bucket").inputs)["rules"]}
        assert rules["retention"]["noncurrentVersionExpiration"] == {"noncurrentDays": 7}
        # Delete markers left once every version under them has expired go too.
        assert rules["delete-markers"]["expiration"] == {"expiredObjectDeleteMarker": True}
        assert rules["delete-markers"]["status"] == "Enabled"


def test_bucket_versioning_can_be_turned_off_without_deleting_a_protected_resource():
    """Off suspends versioning (an update of the same resource): with retainData the versioning
    resource is protected, so deleting it would stop `pulumi up`."""
    run = run_program("prod", {"bucketVersioning": "false"})
    assert run.error is None, run.error
    assert _versioning(run) == {"tempo-bucket": "Suspended", "loki-bucket": "Suspended"}


def test_bucket_versioning_is_a_boolean():
    with pytest.raises(SettingsError, match="bucketVersioning: 'yes' is not true or false; allowed: true, false"):
        settings_for("prod", bucketVersioning="yes")
