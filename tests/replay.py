"""A replay of the program: what one mocked run of __main__.py registered, written to JSON, then
registered again in order with none of the program's logic (no settings, renderers, dashboards or
apply chains). Its time is the floor the program is measured against (benchmark_program.py --replay).

    python -m tests.replay record prod build/replay/prod.json
    python -m tests.replay replay build/replay/prod.json [--dump replayed.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Optional, cast

import pulumi
from pulumi.runtime import rpc

from tests.harness import ProgramRun, Registered, is_secret, run_program

SDK_PACKAGES = ("pulumi_aws", "pulumi_docker", "pulumi_random", "pulumiverse_grafana")


def registration(resource: Registered) -> dict[str, Any]:
    """One registration as the mock monitor saw it: what the replay must reproduce."""
    return {
        "type": resource.type,
        "name": resource.name,
        "urn": resource.urn,
        "parent": resource.parent_urn,
        "provider": resource.provider or "",
        "inputs": resource.inputs,
        "options": resource.options,
    }


def record(run: ProgramRun, stack: str) -> dict[str, Any]:
    """The run's registrations in order, each with its SDK class (None: a component), and the stack outputs."""
    assert run.error is None, run.error
    return {
        "stack": stack,
        "resources": [{**registration(r), "class": sdk_class(r.type)} for r in run.resources],
        "outputs": run.outputs,
        "secretOutputs": sorted(run.secret_outputs),
    }


def sdk_class(token: str) -> Optional[str]:
    """The SDK class ("module.Class") registered for a type token in the SDK's resource registry,
    which importing the SDK fills; None for the program's own component types."""
    pkg, mod, name = token.split(":")
    if (pkg, mod) == ("pulumi", "providers"):
        package: Any = rpc.get_resource_package(name, "")
        return f"{package.pkg_info['fqn']}.{package.pkg_info['class']}"
    module: Any = rpc.get_resource_module(pkg, mod, "")
    return None if module is None else f"{module.mod_info['fqn']}.{module.mod_info['classes'][token]}"


def replay(recording: dict[str, Any]) -> None:
    """Register the recorded resources in their order and export the recorded outputs; run_program
    runs it in place of __main__.py."""
    made: dict[str, pulumi.Resource] = {}
    for entry in recording["resources"]:
        made[entry["urn"]] = _register(entry, made)
    secret = set(recording["secretOutputs"])
    for name, value in recording["outputs"].items():
        pulumi.export(name, pulumi.Output.secret(value) if name in secret else value)


def _register(entry: dict[str, Any], made: dict[str, pulumi.Resource]) -> pulumi.Resource:
    options, provider = entry["options"], entry["provider"]
    opts = pulumi.ResourceOptions(
        # The stack is not in `made`: no parent means the stack, as in the program.
        parent=made.get(entry["parent"]),
        provider=cast(pulumi.ProviderResource, made[provider.rsplit("::", 1)[0]]) if provider else None,  # a reference is "urn::id"
        # The program's dependencies come from Outputs among its inputs; the recorded inputs are values.
        depends_on=[made[urn] for urn in options["dependencies"]],
        protect=options["protect"],
        retain_on_delete=options["retainOnDelete"],
        ignore_changes=options["ignoreChanges"],
        aliases=[_alias(spec) for spec in options["aliases"]],
        additional_secret_outputs=options["additionalSecretOutputs"],
        version=options["version"] or None,
        plugin_download_url=options["pluginDownloadURL"] or None,
    )
    if entry["class"] is None:
        return pulumi.ComponentResource(entry["type"], entry["name"], None, opts)
    module, _, class_name = entry["class"].rpartition(".")
    cls = getattr(importlib.import_module(module), class_name)
    # The generated __init__ takes typed arguments; the base class takes the property map as recorded.
    resource = cls.__new__(cls)
    inputs = _from_wire(entry["inputs"])
    if isinstance(resource, pulumi.ProviderResource):
        pulumi.ProviderResource.__init__(resource, entry["type"].split(":")[2], entry["name"], inputs, opts)
    else:
        pulumi.CustomResource.__init__(resource, entry["type"], entry["name"], inputs, opts)
    return resource


def _alias(spec: dict[str, Any]) -> pulumi.Alias:
    given = {"name": spec["name"], "type_": spec["type"], "parent": None if spec["noParent"] else spec["parentUrn"]}
    # A field left empty was not given: the engine takes it from the resource itself.
    return pulumi.Alias(**{key: value for key, value in given.items() if value != ""})


def _from_wire(value: Any) -> Any:
    """Inputs as the engine received them, each secret made a secret Output again."""
    if is_secret(value):
        return pulumi.Output.secret(_from_wire(value["value"]))
    if isinstance(value, dict):
        assert rpc._special_sig_key not in value, f"only secrets are replayed, not {value}"
        return {key: _from_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_wire(item) for item in value]
    return value


def replay_file(path: Path) -> ProgramRun:
    recording = json.loads(Path(path).read_text(encoding="utf-8"))
    run = run_program(recording["stack"], main=lambda: replay(recording))
    assert run.error is None, run.error
    return run


def write(document: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    recorder = commands.add_parser("record", help="run the program for a stack and write what it registered")
    recorder.add_argument("stack")
    recorder.add_argument("path", type=Path)
    replayer = commands.add_parser("replay", help="register a recording's resources again")
    replayer.add_argument("path", type=Path)
    replayer.add_argument("--dump", type=Path, help="write what the replay registered, and the SDK and project modules it imported")
    args = parser.parse_args()
    if args.command == "record":
        write(record(run_program(args.stack), args.stack), args.path)
        return
    run = replay_file(args.path)
    if args.dump:
        modules = sorted(m for m in sys.modules if m.startswith((*SDK_PACKAGES, "components")))
        resources = [registration(r) for r in run.resources]
        write({"resources": resources, "outputs": run.outputs, "secretOutputs": sorted(run.secret_outputs), "modules": modules}, args.dump)


if __name__ == "__main__":
    main()
