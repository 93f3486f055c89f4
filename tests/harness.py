"""Run the real __main__.py under Pulumi mocks and record what it registers.

Mocks are process-global, so each run resets the root stack and installs fresh mocks. Inputs arrive
as the engine would see them: camelCase keys, secrets wrapped in the secret signature.
"""

from __future__ import annotations

import gc
import hashlib
import json
import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.settings import ROOT
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components.stackconfig import PROJECT_DIR, load_stack_config, project_name

PROJECT = project_name()
SECRET_SIG = rpc._special_secret_sig
MOCK_ELB_ACCOUNT = "156460612806"
MOCK_REGION = "eu-west-1"
MOCK_ACCOUNT = "123456789012"


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: Optional[str]
    urn: str = ""
    # The parent's URN as the mock monitor made it ("" for the stack itself).
    parent_urn: str = ""
    # Resource options as the engine receives them: protect, retainOnDelete, ignoreChanges, aliases, and
    # the dependencies (explicit and from inputs), secret outputs and plugin version the SDK adds.
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def parent_types(self) -> list[str]:
        """Types of the ancestors, outermost first, as the URN records them."""
        return self.urn.split("::")[2].split("$")[:-1] if self.urn else []


@dataclass
class ProgramRun:
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    error: Optional[BaseException] = None

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str) -> Registered:
        matches = [r for r in self.resources if r.type == type_ and r.name == name]
        assert len(matches) == 1, f"expected one {type_} named {name}, found {len(matches)}"
        return matches[0]


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == SECRET_SIG


def plain_strings(value: Any):
    """Every string in registered inputs that is not inside a secret."""
    if is_secret(value):
        return
    if isinstance(value, dict):
        for item in value.values():
            yield from plain_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from plain_strings(item)
    elif isinstance(value, str):
        yield value


def unwrap(value: Any) -> Any:
    """Strip secret wrappers, recursively."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class RecordingMocks(pulumi.runtime.Mocks):
    """Acts as the providers would for the few outputs the program reads back."""

    def __init__(self, run: ProgramRun):
        self.run = run

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.run.resources.append(Registered(args.typ, args.name, args.inputs, args.provider))
        outputs = dict(args.inputs)
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = f"mock-password-{args.name}"
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = "sha256:" + hashlib.sha256(args.inputs["name"].encode()).hexdigest()
        if args.typ == "pulumiverse:grafana:oss/folder:Folder" or args.typ.endswith("oss/folder:Folder"):
            outputs.setdefault("uid", args.inputs.get("uid"))
        if args.typ.startswith("aws:"):
            return self._aws_resource(args, outputs)
        return f"{args.name}-id", outputs

    @staticmethod
    def _aws_resource(args: pulumi.runtime.MockResourceArgs, outputs: dict[str, Any]):
        """Ids and ARNs shaped like AWS's, so policies and references built from them read true."""
        module = args.typ.split(":")[1].split("/")[0]
        service = {"amp": "aps", "cloudwatch": "logs", "lb": "elasticloadbalancing"}.get(module, module)
        if args.typ == "aws:s3/bucket:Bucket":
            name = args.inputs.get("bucketPrefix", "") + "20261125000000000000000001"
            outputs.update(bucket=name, arn=f"arn:aws:s3:::{name}")
            return name, outputs
        outputs.setdefault("name", args.inputs.get("name", args.name))
        region = "" if service == "iam" else MOCK_REGION
        outputs.setdefault("arn", f"arn:aws:{service}:{region}:{MOCK_ACCOUNT}:{args.typ.split(':')[-1].lower()}/{args.name}")
        if args.typ == "aws:lb/loadBalancer:LoadBalancer":
            outputs["dnsName"] = f"{args.name}-123456789.{MOCK_REGION}.elb.amazonaws.com"
            outputs["zoneId"] = "Z32O12XQLNTSW2"
        if args.typ == "aws:amp/workspace:Workspace":
            outputs["prometheusEndpoint"] = f"https://aps-workspaces.{MOCK_REGION}.amazonaws.com/workspaces/ws-{args.name}/"
        if args.typ == "aws:route53/record:Record":
            outputs["fqdn"] = args.inputs["name"]
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": MOCK_ACCOUNT, "arn": f"arn:aws:iam::{MOCK_ACCOUNT}:user/deployer", "userId": "AIDAMOCK", "id": MOCK_ACCOUNT}
        if args.token == "aws:elb/getServiceAccount:getServiceAccount":
            # eu-west-1's Elastic Load Balancing account (Elastic Load Balancing user guide).
            return {"id": MOCK_ELB_ACCOUNT, "arn": f"arn:aws:iam::{MOCK_ELB_ACCOUNT}:root", "region": args.args.get("region")}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{MOCK_REGION}{zone}" for zone in "abc"]
            return {"names": names, "zoneIds": [f"euw1-az{i}" for i in (1, 2, 3)], "id": MOCK_REGION}
        return {}


def run_program(
    stack: str,
    overrides: Optional[dict[str, Optional[str]]] = None,
    secret_keys: tuple[str, ...] = (),
    main: Optional[Callable[[], None]] = None,
) -> ProgramRun:
    """Run __main__.py for a stack file; overrides set (or, with None, remove) config keys.

    secret_keys: keys the stack stores encrypted, as `pulumi config set --secret` would mark them.
    main: run instead of __main__.py under the same config and mocks (the replay in tests/replay.py).
    """
    config = load_stack_config(stack)
    for key, value in (overrides or {}).items():
        qualified = f"{PROJECT}:{key}"
        if value is None:
            config.pop(qualified, None)
        else:
            config[qualified] = value
    run = ProgramRun()
    pulumi.runtime.set_all_config(config, secret_keys=[f"{PROJECT}:{key}" for key in secret_keys])
    ROOT.set(None)
    pulumi.runtime.set_mocks(RecordingMocks(run), project=PROJECT, stack=stack, preview=False)
    _record_options(run)

    def program() -> None:
        try:
            if main is None:
                runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")
            else:
                main()
        except Exception as error:  # recorded; the caller asserts on it
            run.error = error

    async def settle() -> None:
        root = pulumi.runtime.get_root_resource()
        for name, value in root.outputs.items():  # type: ignore[union-attr]
            output = pulumi.Output.from_input(value)
            run.outputs[name] = await output.future()
            if await output.is_secret():
                run.secret_outputs.add(name)

    _sync_await(run_pulumi_func(program))
    _sync_await(run_pulumi_func(lambda: _sync_await(settle())))
    # __main__.py freezes what it imported and built (gc.freeze); a test process runs it many times,
    # so each run's objects go back to the collector once the run is over.
    gc.unfreeze()
    return run


def _record_options(run: ProgramRun) -> None:
    """The mocks see inputs only; the options come from the engine request itself."""
    monitor = pulumi.runtime.settings.get_monitor()
    register = monitor.RegisterResource  # type: ignore[union-attr]

    def recording(request):
        response = register(request)
        for resource in reversed(run.resources):
            if resource.type == request.type and resource.name == request.name:
                resource.urn, resource.parent_urn = response.urn, request.parent
                resource.options = {
                    "protect": bool(request.protect),
                    "retainOnDelete": bool(request.retainOnDelete),
                    "ignoreChanges": list(request.ignoreChanges),
                    "aliases": [_alias_spec(alias) for alias in request.aliases],
                    "dependencies": sorted(request.dependencies),
                    "additionalSecretOutputs": list(request.additionalSecretOutputs),
                    "version": request.version,
                    "pluginDownloadURL": request.pluginDownloadURL,
                }
                break
        return response

    monitor.RegisterResource = recording  # type: ignore[union-attr]


def _alias_spec(alias: Any) -> dict[str, Any]:
    spec = alias.spec
    return {"name": spec.name, "type": spec.type, "parentUrn": spec.parentUrn, "noParent": spec.noParent}


def dumps(value: Any) -> str:
    return json.dumps(unwrap(value), sort_keys=True)


def project_path(*parts: str) -> Path:
    return PROJECT_DIR.joinpath(*parts)


def pinned_image(key: str) -> str:
    """An *Image key's default in Pulumi.yaml, where the image pins live: tests read it rather than repeat it."""
    return str(load_stack_config_defaults()[key])


def load_stack_config_defaults() -> dict[str, Any]:
    declared = yaml.safe_load(project_path("Pulumi.yaml").read_text())["config"]
    return {key: decl["default"] for key, decl in declared.items() if isinstance(decl, dict) and "default" in decl}
