"""The default prod stack's monthly cost, computed from what the mocked program registers (tests/costs.py),
is within the budget and is what docs/production.md's cost table says, row by row."""

from __future__ import annotations

import re

import pytest

from tests.costs import HOURS_PER_MONTH, PRICE_DATE, WORKLOAD, monthly_costs, price, total
from tests.harness import project_path, run_program

# The reference workload's budget: the default prod stack, its guards included (WAF on the browser
# route, bucket versioning).
BUDGET_USD = 165
_SECTION = "## Cost at the default sizing"
_AMOUNT = re.compile(r"\*\*\$(\d+(?:\.\d\d)?)\*\*")
# A row of the alternatives table: | `key: value` (what it means) | $total | ...
_ALTERNATIVE = re.compile(r"^\| `(\w+): (\w+)`[^|]*\| \$(\d+\.\d\d) \|")


def _cost_section() -> str:
    text = project_path("docs", "production.md").read_text()
    section = text[text.index(_SECTION):]
    return section[: section.index("\n## ", len(_SECTION))]


def documented_cost_table() -> dict[str, float]:
    """item -> the bold amount of its row, the total row under "total"."""
    rows: dict[str, float] = {}
    for line in _cost_section().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not line.startswith("|"):
            continue
        amount = _AMOUNT.search(cells[-1])
        if amount:
            rows[cells[0].strip("*")] = float(amount.group(1))
    return rows


def documented_alternatives() -> dict[tuple[str, str], float]:
    return {(m[1], m[2]): float(m[3]) for m in map(_ALTERNATIVE.match, _cost_section().splitlines()) if m}


@pytest.fixture(scope="module")
def default_prod_costs():
    run = run_program("prod")
    assert run.error is None, run.error
    return monthly_costs(run)


def test_default_prod_stack_costs_at_most_165_dollars_a_month(default_prod_costs):
    assert total(default_prod_costs) <= BUDGET_USD, {line.item: line.usd for line in default_prod_costs}


def test_documented_cost_table_is_the_computed_cost_row_by_row(default_prod_costs):
    table = documented_cost_table()
    computed = {line.item: line.usd for line in default_prod_costs}
    assert {item: usd for item, usd in table.items() if item != "total"} == computed
    assert table["total"] == total(default_prod_costs)


def test_the_cost_section_states_the_price_date():
    assert f"as of {PRICE_DATE}" in _cost_section()


def test_tasks_in_private_subnets_cost_a_nat_gateway_more_than_public_ips(default_prod_costs):
    """The choice of the default: one NAT gateway (and its address) costs more than a public
    address per task at the default task count."""
    private = monthly_costs(run_program("prod", {"taskSubnets": "private"}))
    assert "NAT gateways" not in {line.item for line in default_prod_costs}
    assert {line.item: line.usd for line in private}["NAT gateways"] > 35
    assert total(private) > total(default_prod_costs)


def test_the_cost_section_prices_each_alternative_setting_as_computed():
    alternatives = documented_alternatives()
    assert {key for key, _ in alternatives} == {"cpuArchitecture", "taskSubnets", "collectorMaxTasks", "metricsBackend", "browserRateLimit",
                                                  "bucketVersioning", "vpcFlowLogs", "wafLogging"}
    for (key, value), usd in alternatives.items():
        run = run_program("prod", {key: value})
        assert run.error is None, run.error
        assert total(monthly_costs(run)) == usd, (key, value)


def test_ephemeral_storage_beyond_fargates_20_gb_is_priced(default_prod_costs):
    bigger = {line.item: line.usd for line in monthly_costs(run_program("prod", {"prometheusStorageGib": "100"}))}
    fargate = {line.item: line.usd for line in default_prod_costs}["Fargate"]
    # 80 GB more for one task: 80 x 730 h x $0.000111.
    assert bigger["Fargate"] == pytest.approx(fargate + 6.48, abs=0.01)


def test_the_browser_routes_web_acl_is_priced_per_acl_rule_and_request_inspected(default_prod_costs):
    """The web ACL inspects every request to the load balancer (AWS WAF pricing), not only the
    browser route's: the reference workload's request rate, a month of it."""
    requests = WORKLOAD["load_balancer_requests_per_second"] * HOURS_PER_MONTH * 3600
    waf = {line.item: line.usd for line in default_prod_costs}["AWS WAF"]
    assert waf == pytest.approx(price("waf_acl_month") + price("waf_rule_month") + requests / 1e6 * price("waf_million_requests"), abs=0.01)
    off = {line.item for line in monthly_costs(run_program("prod", {"browserRateLimit": "0"}))}
    assert "AWS WAF" not in off


def test_bucket_versioning_is_priced_as_the_noncurrent_versions_it_keeps(default_prod_costs):
    """What the stores delete a month (the workload's assumption) stays 7 days as noncurrent
    versions in Tempo's and Loki's buckets."""
    kept_gb_months = WORKLOAD["object_store_gb_deleted_per_month"] * 7 / (HOURS_PER_MONTH / 24)
    versions = {line.item: line.usd for line in default_prod_costs}["S3 object versions"]
    assert versions == pytest.approx(kept_gb_months * price("s3_gb_month"), abs=0.01)
    off = {line.item for line in monthly_costs(run_program("prod", {"bucketVersioning": "false"}))}
    assert "S3 object versions" not in off
