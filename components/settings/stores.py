"""What the stores keep: each store's retention, and Prometheus's disk and the share of it its
blocks may take."""

from __future__ import annotations

import re

from components.settings.model import (
    FARGATE_EPHEMERAL_STORAGE_GIB,
    FARGATE_MAX_EPHEMERAL_STORAGE_GIB,
    PROMETHEUS_MAX_RETENTION_SHARE,
    PrometheusStorage,
    Retention,
)
from components.settings.reader import ConfigReader, what_is_wrong

STORES = ("prometheus", "tempo", "loki")
# storage.tsdb.retention.size units, powers of 2 (prometheus docs/configuration: "<size>").
_SIZE_UNITS = {"MB": 1, "GB": 1024, "TB": 1024 * 1024}
_RETENTION_SIZE = re.compile(r"\A(?:(?P<percent>[1-9][0-9]?)%|(?P<count>[1-9][0-9]*)(?P<unit>MB|GB|TB))\Z")


def read_retention(reader: ConfigReader) -> dict[str, Retention]:
    """store -> its retention; Loki's is whole days (its index period)."""
    return {
        store: reader.retention(f"{store}Retention", minimum_hours=24 if store == "loki" else 1, whole_days=store == "loki")
        for store in STORES
    }


def read_prometheus_storage(reader: ConfigReader, target: str) -> PrometheusStorage:
    if target == "aws":
        # The Prometheus task is given this much ephemeral storage.
        disk = reader.integer("prometheusStorageGib", minimum=FARGATE_EPHEMERAL_STORAGE_GIB, maximum=FARGATE_MAX_EPHEMERAL_STORAGE_GIB)
    else:
        disk = reader.integer("prometheusStorageGib", minimum=1, maximum=64 * 1024)
    value = reader.raw("prometheusRetentionSize") or ""
    match = _RETENTION_SIZE.fullmatch(value)
    allowed = f"a share of prometheusStorageGib such as 80% (at most {PROMETHEUS_MAX_RETENTION_SHARE}%), or a size with MB, GB or TB such as 12GB"
    if not match:
        if value:
            reader.problem("prometheusRetentionSize", f"{value!r} {what_is_wrong(value, 'is not a size')}; allowed: {allowed}")
        return PrometheusStorage(disk, disk * 1024 * 80 // 100)
    percent, count, unit = match.group("percent", "count", "unit")
    retention_mib = disk * 1024 * int(percent) // 100 if percent else int(count) * _SIZE_UNITS[unit]
    if retention_mib > disk * 1024 * PROMETHEUS_MAX_RETENTION_SHARE // 100:
        reader.problem(
            "prometheusRetentionSize",
            f"{value!r} is more than {PROMETHEUS_MAX_RETENTION_SHARE}% of prometheusStorageGib ({disk} GiB); compactions need the rest; allowed: {allowed}",
        )
    return PrometheusStorage(disk, retention_mib)
