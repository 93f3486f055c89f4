"""The collector's topology: which tiers run, as which services, at which addresses, scraped as
which jobs, scaled how. Everything else (the configs, the stack, Prometheus, the alert on the
tiers) reads it from here.

One collector process does both jobs (ALL) where the collector runs once. Where it may scale out,
an INGEST tier behind the load balancer routes spans by trace id to a SAMPLER tier, so every span
of a trace meets in one sampler (tail sampling and the service graph need the whole trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from components.platforms.facts import PlatformFacts
from components.platforms.spec import Port, Scaling
from components.services.collector_sampling import TRACES_MEMORY_LIMIT_PERCENTAGE, TRACES_MEMORY_SPIKE_PERCENTAGE
from components.settings import Settings

ALL = "all"
INGEST = "ingest"
SAMPLER = "sampler"
TIERS = (ALL, INGEST, SAMPLER)

NAME = "collector"
SAMPLER_NAME = "collector-sampler"
# Every tier serves its own metrics here.
METRICS = Port("metrics", 8888)
# Scrape jobs, one per tier (the collector-down rule counts both).
JOB = "otel-collector"
SAMPLER_JOB = "otel-collector-sampler"

# Tail sampling's budget is a trace count sized to memory, and at that bound the collector waits
# with little CPU (a third of a core in benchmarks/collector.md): scaling on CPU alone would not
# see it. Where the collector scales out, the tiers that sample also scale on memory, below the
# share at which the traces limiter starts refusing (collector_sampling.py).
SCALING_MEMORY_PERCENTAGE = 20
assert SCALING_MEMORY_PERCENTAGE < TRACES_MEMORY_LIMIT_PERCENTAGE - TRACES_MEMORY_SPIKE_PERCENTAGE


@dataclass(frozen=True)
class Tier:
    kind: str
    # The service it runs as, and the name other services reach it by.
    service: str
    host: str
    job: str
    # Several tasks behind the host, where the collector scales out; None: one instance.
    scaling: Optional[Scaling]

    @property
    def samples(self) -> bool:
        """The tier runs tail sampling (and the connectors) on whole traces."""
        return self.kind != INGEST

    @property
    def takes_telemetry(self) -> bool:
        """Apps (and web pages) send to this tier: it is the stack's OTLP entry point."""
        return self.kind != SAMPLER


@dataclass(frozen=True)
class CollectorTopology:
    tiers: tuple[Tier, ...]

    @property
    def entry(self) -> Tier:
        return self.tiers[0]

    @property
    def sampler(self) -> Optional[Tier]:
        return next((t for t in self.tiers if t.kind == SAMPLER), None)

    def tier(self, kind: str) -> Tier:
        return next(t for t in self.tiers if t.kind == kind)

    # Which tiers write to which store, as collector_config.py composes them: every tier writes
    # metrics (apps' or span metrics), the tiers apps send to write logs, the sampling ones traces;
    # the ingest tier sends spans to the sampler tier.
    @property
    def metric_writers(self) -> tuple[str, ...]:
        return tuple(t.service for t in self.tiers)

    @property
    def log_writers(self) -> tuple[str, ...]:
        return tuple(t.service for t in self.tiers if t.takes_telemetry)

    @property
    def trace_writers(self) -> tuple[str, ...]:
        return tuple(t.service for t in self.tiers if t.samples)

    @property
    def sampler_senders(self) -> tuple[str, ...]:
        return tuple(t.service for t in self.tiers if t.kind == INGEST)


def collector_topology(settings: Settings, facts: PlatformFacts) -> CollectorTopology:
    """Two tiers where the settings let the collector run more than one task and the platform can
    scale a service out; one doing both jobs otherwise."""
    minimum, maximum = settings.collector_tasks
    if not (facts.scales_out and maximum > 1):
        return CollectorTopology((Tier(ALL, NAME, facts.internal_host(NAME), JOB, None),))
    return scaled_topology(facts, minimum, maximum)


def scaled_topology(facts: PlatformFacts, minimum: int, maximum: int) -> CollectorTopology:
    """Both tiers sized alike; the ingest tier scales on CPU, the sampler also on memory."""
    return CollectorTopology(
        (
            Tier(INGEST, NAME, facts.internal_host(NAME), JOB, Scaling(minimum, maximum)),
            Tier(SAMPLER, SAMPLER_NAME, facts.internal_host(SAMPLER_NAME), SAMPLER_JOB,
                 Scaling(minimum, maximum, memory_percentage=SCALING_MEMORY_PERCENTAGE)),
        )
    )
