"""The observability stack's CrossGuard policy pack. Run by the Pulumi CLI:
pulumi preview --policy-pack policy (constructing the PolicyPack serves it until the CLI is done)."""

from pulumi_policy import PolicyPack

from pack import PACK_NAME, policies

PolicyPack(name=PACK_NAME, policies=policies())
