"""Alert rules: valid files, queries that parse and name only produced series, rules created by the
provider against existing data sources, contact points whose credentials stay secret, and a
notification policy that routes every severity."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
import pytest

from components.grafana.alert_model import SEVERITIES
from components.grafana.alert_stages import EXPRESSION_UID, rule_stages
from components.grafana.alerting import FOLDER_UID, severity_routes
from components.grafana.alerts import AlertRulesError, all_rules, load_rule_groups, promql_rules, runbook_anchors
from components.grafana.content import DATASOURCE_UIDS
from components.grafana.dashboards import label_names, label_replace_targets, metric_names
from components.grafana.runbook import RUNBOOK_UID, anchor, runbook_dashboard, runbook_links, runbook_sections
from components.telemetry import SCRAPE_JOBS, produced_label_names, produced_metric_names
from tests.harness import is_secret, plain_strings, project_path, run_program, unwrap
from tests.test_dashboards import _check_with_promtool

GROUPS = load_rule_groups(datasource_uids=DATASOURCE_UIDS)
RULES = all_rules(GROUPS)
# What Prometheus evaluates; the dev stack (no CloudWatch) has exactly these.
PROMQL_RULES = promql_rules(GROUPS)
RULE_GROUP = "grafana:alerting/ruleGroup:RuleGroup"
CONTACT_POINT = "grafana:alerting/contactPoint:ContactPoint"
POLICY = "grafana:alerting/notificationPolicy:NotificationPolicy"
FOLDER = "grafana:oss/folder:Folder"

SLACK_URL = "https://hooks.slack.com/services/T000/B000/mock-webhook-secret"
PAGERDUTY_KEY = "0123456789abcdef0123456789abcdef"
SMTP_PASSWORD = "mock-smtp-secret"
ALL_CONTACTS = {
    "alertEmailAddresses": '["oncall@example.com", "team@example.com"]',
    "alertSlackWebhookUrl": SLACK_URL,
    "alertPagerDutyIntegrationKey": PAGERDUTY_KEY,
    "smtpHost": "smtp.example.com:587",
    "smtpUser": "grafana",
    "smtpPassword": SMTP_PASSWORD,
    "smtpFromAddress": "grafana@example.com",
}
SECRET_KEYS = ("alertSlackWebhookUrl", "alertPagerDutyIntegrationKey", "smtpPassword")


# --- the rule files --------------------------------------------------------------------------


def test_one_group_per_file_apps_and_stack():
    assert {(g.slug, g.name) for g in GROUPS} == {("apps", "OpenDeck apps"), ("stack", "Observability stack")}


def test_every_component_has_a_down_rule_that_alerts_on_missing_data():
    stack = next(g for g in GROUPS if g.slug == "stack")
    down = {rule.uid: rule for rule in stack.rules if re.search(r"\bup\{", rule.query or "")}
    jobs = {re.search(r'job="([^"]+)"', rule.query).group(1) for rule in down.values()}
    assert jobs == {"otel-collector", "prometheus", "tempo", "loki"}
    assert jobs <= set(SCRAPE_JOBS)
    for rule in down.values():
        assert "absent(" in rule.query, rule.uid
        assert (rule.no_data_state, rule.severity) == ("Alerting", "critical"), rule.uid
        assert (rule.threshold_op, rule.threshold) == ("<", 1.0)


def test_only_prometheus_down_alerts_when_prometheus_cannot_be_queried():
    alerting_on_error = [rule.uid for rule in RULES if rule.exec_err_state == "Alerting"]
    assert alerting_on_error == ["stack-prometheus-down"]
    assert {rule.exec_err_state for rule in RULES} - {"Alerting"} == {"KeepLast"}


def test_rules_that_count_failures_treat_no_data_as_ok():
    for rule in RULES:
        if "up{" not in (rule.query or ""):
            assert rule.no_data_state == "OK", rule.uid


def test_the_issue_s_rules_are_there():
    queries = "\n".join(rule.query or "" for rule in RULES)
    for needle in (
        "traces_span_metrics_calls_total", "traces_span_metrics_duration_seconds_bucket",
        "http_server_request_duration_seconds_count", "http_server_duration_milliseconds_count",
        "http_server_request_duration_seconds_bucket", "http_server_duration_milliseconds_bucket",
        "opendeck_celery_tasks_failed_total", "opendeck_documents_failed_total",
        "otelcol_receiver_refused_spans_total", "otelcol_exporter_send_failed_spans_total",
        "otelcol_exporter_enqueue_failed_spans_total", "otelcol_exporter_queue_capacity",
        "prometheus_http_requests_total", "prometheus_tsdb_out_of_order_samples_total",
        "loki_discarded_samples_total", "loki_request_duration_seconds_count", "tempo_discarded_spans_total",
    ):
        assert needle in queries, needle


def test_every_severity_is_used_and_every_rule_has_its_annotations():
    assert {rule.severity for rule in RULES} == set(SEVERITIES)
    text = project_path("docs", "runbook.md").read_text()
    anchors = runbook_anchors(text)
    links = runbook_links(text, "https://observability.example/")
    for rule in RULES:
        annotations = rule.annotations(links)
        assert annotations["summary"] and annotations["description"], rule.uid
        assert annotations["runbook_url"].startswith("https://observability.example/d/runbook?viewPanel="), rule.uid
        assert rule.runbook_anchor in anchors, rule.uid
        assert rule.labels == {"severity": rule.severity}


def test_runbook_anchors_follow_github_headings():
    assert runbook_anchors("# Runbook\n### HTTP 5xx ratio high\n## Loki: push (errors)\n") == {
        "runbook", "http-5xx-ratio-high", "loki-push-errors",
    }


def _write_group(tmp_path: Path, rule_overrides: dict, **group) -> Path:
    rule = {
        "uid": "x-rule", "title": "X", "severity": "warning", "for": "5m", "no_data_state": "OK",
        "exec_err_state": "KeepLast", "query": "up", "threshold": "> 0", "summary": "s",
        "description": "d", "runbook": "x",
    }
    rule.update(rule_overrides)
    document = {"group": "X", "interval": "1m", "rules": [rule], **group}
    (tmp_path / "alerts").mkdir(exist_ok=True)
    (tmp_path / "alerts" / "x.yaml").write_text(json.dumps(document))
    (tmp_path / "runbook.md").write_text("# Runbook\n## X\n")
    return tmp_path


BAD_RULES = [
    ({"severity": "page"}, "severity: 'page' is not allowed; allowed: critical, warning, info"),
    ({"for": "five minutes"}, "for: 'five minutes' is not a duration"),
    ({"no_data_state": "ok"}, "no_data_state: 'ok' is not allowed"),
    ({"exec_err_state": None}, "exec_err_state: None is not allowed"),
    ({"threshold": ">= 1"}, "threshold: '>= 1' is not allowed"),
    ({"runbook": "nowhere"}, "runbook: no section #nowhere in docs/runbook.md"),
    ({"summary": ""}, "summary: missing"),
    ({"uid": "Has Spaces"}, "uid: 'Has Spaces' is not allowed"),
    ({"datasource": "influx"}, "datasource: 'influx' is not a data source of the stack"),
    ({"labels": {"team": "x"}}, "unknown keys labels"),
]


@pytest.mark.parametrize(("override", "message"), BAD_RULES, ids=[m.split(":")[0] for _, m in BAD_RULES])
def test_a_bad_rule_is_refused_with_the_file_rule_and_key(tmp_path, override, message):
    root = _write_group(tmp_path, override)
    with pytest.raises(AlertRulesError) as caught:
        load_rule_groups(root / "alerts", root / "runbook.md", DATASOURCE_UIDS)
    assert any(p.startswith("x.yaml: ") and message in p for p in caught.value.problems), caught.value.problems


def test_a_good_rule_file_loads(tmp_path):
    root = _write_group(tmp_path, {})
    (group,) = load_rule_groups(root / "alerts", root / "runbook.md", DATASOURCE_UIDS)
    assert (group.name, group.interval_seconds, group.rules[0].uid) == ("X", 60, "x-rule")


def test_a_bad_interval_is_refused(tmp_path):
    root = _write_group(tmp_path, {}, interval="90")
    with pytest.raises(AlertRulesError, match=r"x.yaml: interval: '90' is not a duration"):
        load_rule_groups(root / "alerts", root / "runbook.md", DATASOURCE_UIDS)


def test_a_uid_used_twice_is_refused(tmp_path):
    root = _write_group(tmp_path, {})
    copy = json.loads((root / "alerts" / "x.yaml").read_text())
    copy["group"], copy["rules"][0]["title"] = "Y", "Y"
    (root / "alerts" / "y.yaml").write_text(json.dumps(copy))
    with pytest.raises(AlertRulesError, match=r"y.yaml: x-rule: uid is also used in x.yaml"):
        load_rule_groups(root / "alerts", root / "runbook.md", DATASOURCE_UIDS)


def test_a_broken_rule_file_stops_the_program_before_any_resource(monkeypatch, tmp_path):
    root = _write_group(tmp_path, {"severity": "page"})
    import components.grafana.alerts as alerts

    monkeypatch.setattr(alerts, "ALERTS_DIR", root / "alerts")
    monkeypatch.setattr(alerts, "RUNBOOK_PATH", root / "runbook.md")
    run = run_program("dev")
    assert isinstance(run.error, pulumi.RunError), run.error
    assert "x.yaml: x-rule: severity: 'page'" in str(run.error)
    assert run.resources == []


# --- queries -------------------------------------------------------------------------------


def test_every_rule_query_passes_promtool(tmp_path):
    result = _check_with_promtool([rule.query or "" for rule in PROMQL_RULES], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(PROMQL_RULES)} rules found" in result.stdout


def test_promtool_catches_a_broken_rule_query(tmp_path):
    result = _check_with_promtool(["sum by (service_name) (rate(http_server_duration_milliseconds_count[5m])"], tmp_path)
    assert result.returncode != 0


def unproduced_metrics(query: str) -> set[str]:
    return metric_names(query) - produced_metric_names()


@pytest.mark.parametrize("rule", PROMQL_RULES, ids=[r.uid for r in PROMQL_RULES])
def test_every_metric_a_rule_names_is_produced(rule):
    assert metric_names(rule.query), "a rule that selects no metric"
    assert unproduced_metrics(rule.query) == set()


@pytest.mark.parametrize("rule", PROMQL_RULES, ids=[r.uid for r in PROMQL_RULES])
def test_every_label_a_rule_uses_is_produced(rule):
    extra = label_names(rule.query) - produced_label_names() - label_replace_targets(rule.query)
    assert extra == set()


def test_the_metric_check_catches_a_name_no_pipeline_produces():
    # The plan's name for HTTP requests: nothing emits it.
    assert unproduced_metrics('sum by (service_name) (rate(http_server_requests_total{status=~"5.."}[5m]))') == {
        "http_server_requests_total"
    }
    assert unproduced_metrics('{__name__=~"otelcol_receiver_refused_spans_total|otelcol_receiver_dropped_spans"}') == {
        "otelcol_receiver_dropped_spans"
    }


# --- what the program registers ------------------------------------------------------------


@pytest.fixture(scope="module")
def contacted():
    run = run_program("dev", ALL_CONTACTS, secret_keys=SECRET_KEYS)
    assert run.error is None, run.error
    return run


def unknown_datasources(rule_group_inputs: dict, known: set[str]) -> list[str]:
    """Query stages of a registered rule group whose data source uid is not known."""
    found = []
    for rule in rule_group_inputs["rules"]:
        for stage in rule["datas"]:
            model = json.loads(stage["model"])
            for uid in (stage["datasourceUid"], model.get("datasource", {}).get("uid")):
                if uid not in known:
                    found.append(f"{rule['name']}/{stage['refId']}: {uid}")
    return found


def test_rule_groups_are_created_in_their_own_folder_by_the_grafana_provider(dev):
    folders = {f.inputs["uid"]: f for f in dev.of_type(FOLDER)}
    assert folders[FOLDER_UID].parent_types[-1] == "observability:grafana:Alerting"
    groups = dev.of_type(RULE_GROUP)
    assert {g.inputs["name"] for g in groups} == {g.name for g in GROUPS}
    (provider,) = {r.provider for r in dev.resources if r.type.startswith("grafana:")}
    for group in groups:
        assert group.inputs["folderUid"] == FOLDER_UID
        assert group.provider == provider
        assert group.parent_types[-1] == "observability:grafana:Alerting"


def test_every_rule_query_references_an_existing_datasource(dev):
    registered = {source.inputs["uid"] for source in dev.of_type("grafana:oss/dataSource:DataSource")}
    assert registered == set(DATASOURCE_UIDS)
    groups = dev.of_type(RULE_GROUP)
    assert sum(len(g.inputs["rules"]) for g in groups) == len(PROMQL_RULES)
    for group in groups:
        assert unknown_datasources(group.inputs, registered | {EXPRESSION_UID}) == []


def test_the_datasource_check_catches_an_unknown_uid(dev):
    group = json.loads(json.dumps(dev.of_type(RULE_GROUP)[0].inputs))
    model = json.loads(group["rules"][0]["datas"][0]["model"])
    model["datasource"]["uid"] = "mimir"
    group["rules"][0]["datas"][0]["model"] = json.dumps(model)
    assert unknown_datasources(group, set(DATASOURCE_UIDS) | {EXPRESSION_UID}) == [f"{group['rules'][0]['name']}/A: mimir"]


def test_registered_rules_are_the_files_rules(dev):
    registered = {rule["uid"]: rule for group in dev.of_type(RULE_GROUP) for rule in group.inputs["rules"]}
    (runbook,) = [d for d in dev.of_type("grafana:oss/dashboard:Dashboard") if d.name == "dashboard-runbook"]
    model = json.loads(runbook.inputs["configJson"])
    assert model["uid"] == RUNBOOK_UID and runbook.inputs["folder"] == FOLDER_UID
    panels = {p["id"]: p["options"]["content"] for p in model["panels"]}
    for rule in PROMQL_RULES:
        got = registered[rule.uid]
        assert got["name"] == rule.title
        assert (got["for"], got["noDataState"], got["execErrState"]) == (rule.pending_for, rule.no_data_state, rule.exec_err_state)
        assert got["labels"] == {"severity": rule.severity}
        assert set(got["annotations"]) == {"summary", "description", "runbook_url"}
        # Absolute: the link works in Slack, PagerDuty and e-mail, and opens the rule's own section.
        url = got["annotations"]["runbook_url"]
        assert url.startswith(f"http://localhost:3000/d/{RUNBOOK_UID}?viewPanel="), url
        assert panels[int(url.rsplit("=", 1)[1])].startswith(("## ", "### ")), url
        assert anchor(panels[int(url.rsplit("=", 1)[1])].split("\n", 1)[0].lstrip("# ")) == rule.runbook_anchor
        stages = {s["refId"]: s for s in got["datas"]}
        assert got["condition"] in stages
        expected = {s.ref_id: s for s in rule_stages(rule)}
        assert {ref: json.loads(s["model"]) for ref, s in stages.items()} == {ref: s.model for ref, s in expected.items()}
        assert stages["A"]["relativeTimeRange"]["from"] >= 900
        assert json.loads(stages["A"]["model"])["expr"] == rule.query


def test_rule_stages_compare_the_last_value_with_the_threshold():
    rule = next(r for r in RULES if r.uid == "app-http-error-ratio")
    query, reduce, condition = (stage.model for stage in rule_stages(rule))
    assert (query["instant"], query["range"]) == (True, False)
    assert (reduce["type"], reduce["expression"], reduce["reducer"]) == ("reduce", "A", "last")
    assert (condition["type"], condition["expression"]) == ("threshold", "B")
    assert condition["conditions"][0]["evaluator"] == {"type": "gt", "params": [0.05]}


# --- contact points and routing ------------------------------------------------------------


def test_no_contact_point_still_deploys_and_says_so(dev):
    assert dev.of_type(CONTACT_POINT) == [] and dev.of_type(POLICY) == []
    assert dev.outputs["alertRouting"] == {}
    assert dev.outputs["alertNotifications"].startswith("No contact point configured")
    assert dev.of_type(RULE_GROUP)


def policy_gaps(policy_inputs: dict, contact_points: set[str]) -> list[str]:
    """Severities the policy does not route to an existing contact point."""
    routed = {
        m["value"]: p["contactPoint"]
        for p in policy_inputs.get("policies", [])
        for m in p.get("matchers", [])
        if m["label"] == "severity" and m["match"] == "="
    }
    gaps = [s for s in SEVERITIES if routed.get(s) not in contact_points]
    if policy_inputs.get("contactPoint") not in contact_points:
        gaps.append("default")
    return gaps


def test_the_notification_policy_routes_every_severity(contacted):
    points = {c.inputs["name"]: c for c in contacted.of_type(CONTACT_POINT)}
    (policy,) = contacted.of_type(POLICY)
    assert policy_gaps(policy.inputs, set(points)) == []
    assert policy.inputs["groupBies"] == ["grafana_folder", "alertname"]
    by_severity = {p["matchers"][0]["value"]: points[p["contactPoint"]].inputs for p in policy.inputs["policies"]}
    assert {k for k in ("pagerduties", "slacks", "emails") if k in by_severity["critical"]} == {"pagerduties", "slacks", "emails"}
    assert {k for k in ("pagerduties", "slacks", "emails") if k in by_severity["warning"]} == {"slacks", "emails"}
    assert {k for k in ("pagerduties", "slacks", "emails") if k in by_severity["info"]} == {"emails"}
    assert by_severity["info"]["emails"][0]["addresses"] == ["oncall@example.com", "team@example.com"]
    assert contacted.outputs["alertRouting"] == {
        "critical": ["pagerduty", "slack", "email"], "warning": ["slack", "email"], "info": ["email"],
    }


def test_the_policy_check_catches_an_unrouted_severity(contacted):
    points = {c.inputs["name"] for c in contacted.of_type(CONTACT_POINT)}
    (policy,) = contacted.of_type(POLICY)
    crafted = {**policy.inputs, "policies": [p for p in policy.inputs["policies"] if p["matchers"][0]["value"] != "info"]}
    assert policy_gaps(crafted, points) == ["info"]


def test_a_severity_without_its_channels_falls_back_to_one_that_is_configured():
    assert severity_routes({"pagerduty"}) == {"critical": ("pagerduty",), "warning": ("pagerduty",), "info": ("pagerduty",)}
    assert severity_routes({"slack", "pagerduty"}) == {
        "critical": ("pagerduty", "slack"), "warning": ("slack",), "info": ("slack",),
    }
    assert severity_routes(set()) == {}


def test_only_slack_configured_routes_everything_to_slack():
    run = run_program("dev", {"alertSlackWebhookUrl": SLACK_URL}, secret_keys=SECRET_KEYS)
    assert run.error is None, run.error
    (policy,) = run.of_type(POLICY)
    points = {c.inputs["name"]: c for c in run.of_type(CONTACT_POINT)}
    assert policy_gaps(policy.inputs, set(points)) == []
    assert all(set(p.inputs) & {"slacks", "emails", "pagerduties"} == {"slacks"} for p in points.values())


def test_credentials_stay_secret_in_inputs_and_outputs(contacted):
    slack = [c for c in contacted.of_type(CONTACT_POINT) if "slacks" in c.inputs]
    pagerduty = [c for c in contacted.of_type(CONTACT_POINT) if "pagerduties" in c.inputs]
    assert slack and pagerduty
    for point in slack:
        # The secret URL makes the whole integration block secret in what the engine records.
        assert is_secret(point.inputs["slacks"])
        assert unwrap(point.inputs["slacks"])[0]["url"] == SLACK_URL
    for point in pagerduty:
        assert is_secret(point.inputs["pagerduties"])
        assert unwrap(point.inputs["pagerduties"])[0]["integrationKey"] == PAGERDUTY_KEY
    grafana = next(c for c in contacted.of_type("docker:index/container:Container") if c.name == "grafana")
    assert {"GF_SMTP_ENABLED=true", "GF_SMTP_HOST=smtp.example.com:587", "GF_SMTP_USER=grafana",
            "GF_SMTP_FROM_ADDRESS=grafana@example.com"} <= set(grafana.inputs["envs"])
    assert "GF_SMTP_PASSWORD__FILE=/run/secrets/gf_smtp_password" in grafana.inputs["envs"]
    assert not any(e.startswith("GF_SMTP_PASSWORD=") for e in grafana.inputs["envs"])
    assert SMTP_PASSWORD in json.dumps(unwrap(grafana.inputs["uploads"]))
    for secret in (SLACK_URL, PAGERDUTY_KEY, SMTP_PASSWORD):
        for resource in contacted.resources:
            for text in plain_strings(resource.inputs):
                assert secret not in text, f"{resource.type} {resource.name}"
        assert secret not in json.dumps(contacted.outputs)


def test_the_secrecy_check_catches_a_plain_credential():
    leaked = {"slacks": [{"url": SLACK_URL}]}
    assert SLACK_URL in list(plain_strings(leaked))


def test_a_credential_in_plain_text_is_refused_without_echoing_it():
    run = run_program("dev", {"alertSlackWebhookUrl": SLACK_URL})
    assert isinstance(run.error, pulumi.RunError)
    assert "alertSlackWebhookUrl: is stored in plain text; set it with `pulumi config set --secret" in str(run.error)
    assert SLACK_URL not in str(run.error)
    assert run.resources == []


def test_a_malformed_credential_is_refused_without_echoing_it():
    run = run_program("dev", {"alertPagerDutyIntegrationKey": "short-secret-value"}, secret_keys=SECRET_KEYS)
    assert isinstance(run.error, pulumi.RunError)
    assert "alertPagerDutyIntegrationKey: is not valid (value not shown); allowed: the 32-character" in str(run.error)
    assert "short-secret-value" not in str(run.error)
    assert run.resources == []


# --- documentation -------------------------------------------------------------------------


def test_the_readme_lists_every_alert_with_its_severity():
    readme = project_path("README.md").read_text()
    rows = dict(re.findall(r"^\| (.+?) \| (critical|warning|info) \|", readme, flags=re.MULTILINE))
    assert rows == {rule.title: rule.severity for rule in RULES}


def test_the_runbook_has_a_section_for_every_rule_and_no_orphans():
    # Sections after "## Operations" are procedures, not alerts.
    alerts_part, operations = project_path("docs", "runbook.md").read_text().split("\n## Operations\n")
    anchors = runbook_anchors(alerts_part)
    sections = anchors - {"runbook", "apps", "observability-stack"}
    assert sections == {rule.runbook_anchor for rule in RULES}
    assert not runbook_anchors(operations) & sections


def test_runbook_links_follow_runbook_base_url_when_the_team_keeps_it_elsewhere():
    base = "https://github.com/opendeck/observability/blob/main/docs/runbook.md"
    run = run_program("dev", {"runbookBaseUrl": base})
    assert run.error is None, run.error
    urls = {rule["uid"]: rule["annotations"]["runbook_url"] for group in run.of_type(RULE_GROUP) for rule in group.inputs["rules"]}
    assert urls == {rule.uid: f"{base}#{rule.runbook_anchor}" for rule in PROMQL_RULES}


def test_the_runbook_dashboard_holds_every_section_once():
    text = project_path("docs", "runbook.md").read_text()
    model = runbook_dashboard(text)
    contents = [p["options"]["content"] for p in model["panels"]]
    assert len(contents) == len(runbook_sections(text)) == text.count("\n## ") + text.count("\n### ")
    assert all(content in text for content in contents)
    ys = [p["gridPos"]["y"] for p in model["panels"]]
    assert ys == sorted(set(ys)), "panels stacked, none overlapping"
