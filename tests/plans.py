"""Plans and rendered configs for tests: each stack's own plan (components/plan.py), scaled out
where a test asks for a tier of the scaled shape that the stack file does not have (the dev stack
runs one collector; its tiers are rendered as the stack would render them if it scaled out)."""

from __future__ import annotations

from typing import Any, Optional

from components.plan import placeholder_stores, plan_stack
from components.platforms.spec import MetricsStore
from components.services.collector_config import render_collector_config
from components.services.collector_tiers import ALL
from components.services.prometheus import render_prometheus_config
from components.settings import Settings
from scripts.local_collector import plan_with_tier


def collector_config(settings: Settings, tier: str = ALL, metrics: Optional[MetricsStore] = None) -> dict[str, Any]:
    return render_collector_config(plan_with_tier(plan_stack(settings), tier), tier, metrics)


def deployed_collector_config(settings: Settings, tier: str = ALL) -> dict[str, Any]:
    """As deployed: with the managed metrics store (a placeholder address) where the settings use one."""
    plan = plan_with_tier(plan_stack(settings), tier)
    return render_collector_config(plan, tier, placeholder_stores(plan.facts).metrics)


def prometheus_config(settings: Settings, metrics: Optional[MetricsStore] = None) -> dict[str, Any]:
    return render_prometheus_config(plan_stack(settings), metrics)
