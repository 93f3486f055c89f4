"""The real __main__.py against Pulumi.dev.yaml, under mocks: what it registers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from components import render
from components.grafana.content import CLOUDWATCH_UID, DATASOURCE_UIDS
from components.grafana.dashboards import for_stack, load_folders, targets
from components.platforms.spec import SECRETS_DIR, secret_file
from components.services import cadvisor, collector, loki, prometheus, tempo
from components.settings import SERVICES
from tests.harness import PROJECT, is_secret, plain_strings, project_path, run_program, unwrap
from tests.inventory import EngineUrns
from tests.test_settings import settings_for

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
DATASOURCE = "grafana:oss/dataSource:DataSource"
DASHBOARD = "grafana:oss/dashboard:Dashboard"
FOLDER = "grafana:oss/folder:Folder"
GRAFANA_PROVIDER = "pulumi:providers:grafana"
MOCK_PASSWORD = "mock-password-grafana-admin-password"


@pytest.fixture(scope="module")
def settings():
    return settings_for("dev")


def containers(run) -> dict:
    """The long-running service containers."""
    return {c.name: c for c in run.of_type(CONTAINER) if not c.name.endswith("-setup")}


def setups(run) -> dict:
    """One-shot containers that prepare a volume."""
    return {c.name: c for c in run.of_type(CONTAINER) if c.name.endswith("-setup")}


def uploads(container) -> dict[str, str]:
    """The config files a container gets (secret files apart)."""
    return {u["file"]: u["content"] for u in unwrap(container.inputs.get("uploads", [])) if not u["file"].startswith(SECRETS_DIR)}


def test_one_container_per_service(dev):
    assert set(containers(dev)) == {*SERVICES, cadvisor.NAME}


def test_cadvisor_reads_the_host_read_only_and_publishes_nothing(dev):
    container = containers(dev)[cadvisor.NAME]
    assert container.inputs["volumes"] == [
        {"hostPath": m.host_path, "containerPath": m.path, "readOnly": True} for m in cadvisor.HOST_MOUNTS
    ]
    assert {m.host_path for m in cadvisor.HOST_MOUNTS} == {"/", "/var/run/docker.sock", "/sys", "/var/lib/docker", "/dev/disk"}
    assert not container.inputs.get("privileged") and not container.inputs.get("devices")
    assert container.inputs["securityOpts"] == ["no-new-privileges:true"]
    assert not container.inputs.get("ports")
    assert container.inputs["command"] == ["--docker_only=true", "--housekeeping_interval=15s"]


def test_cadvisor_can_be_turned_off():
    run = run_program("dev", {"containerMetrics": "false"})
    assert run.error is None, run.error
    assert cadvisor.NAME not in containers(run)
    (config,) = uploads(containers(run)["prometheus"]).values()
    assert cadvisor.JOB not in {job["job_name"] for job in yaml.safe_load(config)["scrape_configs"]}


def test_images_are_the_pinned_versions(dev):
    declared = yaml.safe_load(project_path("Pulumi.yaml").read_text())["config"]
    images = {i.name: i.inputs["name"] for i in dev.of_type(IMAGE)}
    assert images == {
        **{f"{s}-image": declared[f"{s}Image"]["default"] for s in (*SERVICES, cadvisor.NAME)},
        "collector-queue-setup-image": declared["utilityImage"]["default"],
        "grafana-data-setup-image": declared["utilityImage"]["default"],
    }
    assert not any(ref.endswith(":latest") for ref in images.values())
    ids = {i.name.removesuffix("-image"): i for i in dev.of_type(IMAGE)}
    for name, container in containers(dev).items():
        # The container runs the pulled image (by id), not a tag resolved again later.
        assert container.inputs["image"].startswith("sha256:"), name
        assert ids[name].inputs["keepLocally"] is True


def test_services_share_one_network_under_their_own_names(dev):
    (network,) = dev.of_type(NETWORK)
    for name, container in containers(dev).items():
        (attachment,) = container.inputs["networksAdvanced"]
        assert attachment["name"] == network.inputs["name"]
        assert attachment["aliases"] == [name]


def test_every_store_keeps_its_data_in_a_named_volume(dev):
    volumes = {v.name: v.inputs["name"] for v in dev.of_type(VOLUME)}
    expected_paths = {
        "prometheus": ("data", "/prometheus"),
        "tempo": ("data", "/var/tempo"),
        "loki": ("data", "/loki"),
        "grafana": ("data", "/var/lib/grafana"),
        "collector": ("queue", collector.QUEUE_DIR),
    }
    for service, (volume, path) in expected_paths.items():
        mounts = containers(dev)[service].inputs["volumes"]
        assert mounts == [{"volumeName": volumes[f"{service}-{volume}"], "containerPath": path}], service
    assert len(set(volumes.values())) == len(volumes)


def test_the_collector_queue_volume_is_handed_to_the_collector_user_before_it_starts(dev):
    """The collector image is FROM scratch and runs as 10001; a fresh named volume is root's."""
    volumes = {v.name: v.inputs["name"] for v in dev.of_type(VOLUME)}
    setup = setups(dev)["collector-queue-setup"]
    assert setup.inputs["user"] == "0"
    assert setup.inputs["command"] == ["chown", "-R", collector.QUEUE_OWNER, "/volume"]
    assert setup.inputs["volumes"] == [{"volumeName": volumes["collector-queue"], "containerPath": "/volume"}]
    # Runs to completion during `up`, is never restarted, needs no network.
    assert setup.inputs["attach"] is True and setup.inputs["mustRun"] is False
    assert setup.inputs["restart"] == "no" and setup.inputs["networkMode"] == "none"
    assert collector.QUEUE_OWNER == "10001:10001"


def test_uploaded_configs_are_exactly_what_the_offline_render_writes(dev):
    files = render.render_stack("dev")
    expected = {
        "collector": {collector.CONFIG_PATH: files["collector/config.yaml"]},
        "prometheus": {prometheus.CONFIG_PATH: files["prometheus/prometheus.yml"]},
        "tempo": {tempo.CONFIG_PATH: files["tempo/tempo.yaml"]},
        "loki": {loki.CONFIG_PATH: files["loki/loki.yaml"]},
    }
    for service, files in expected.items():
        assert uploads(containers(dev)[service]) == files, service


def test_commands_point_at_the_uploaded_configs(dev):
    commands = {name: c.inputs.get("command") for name, c in containers(dev).items()}
    assert commands["collector"] == [f"--config={collector.CONFIG_PATH}"]
    assert commands["tempo"] == [f"-config.file={tempo.CONFIG_PATH}"]
    assert commands["loki"] == [f"-config.file={loki.CONFIG_PATH}"]
    assert f"--config.file={prometheus.CONFIG_PATH}" in commands["prometheus"]


def test_ports_are_published_on_loopback_only(dev):
    published = {
        (name, p["internal"], p["external"], p["ip"])
        for name, c in containers(dev).items()
        for p in c.inputs.get("ports", [])
    }
    assert published == {
        ("grafana", 3000, 3000, "127.0.0.1"),
        ("collector", 4317, 4317, "127.0.0.1"),
        ("collector", 4318, 4318, "127.0.0.1"),
        ("collector", 13133, 13133, "127.0.0.1"),
        ("prometheus", 9090, 9090, "127.0.0.1"),
    }


def test_host_address_and_ports_follow_the_config():
    run = run_program("dev", {"hostAddress": "0.0.0.0", "otlpRequireToken": "true", "grafanaPort": "3300"})
    assert run.error is None
    grafana = containers(run)["grafana"]
    assert grafana.inputs["ports"] == [{"internal": 3000, "external": 3300, "ip": "0.0.0.0"}]
    assert run.outputs["grafanaUrl"] == "http://localhost:3300"


def test_prometheus_stays_on_this_machine_when_the_stack_is_on_the_network():
    """Prometheus's remote-write and OTLP receivers take writes without authentication: published
    on loopback whatever hostAddress says, so the network reaches it only through Grafana."""
    run = run_program("dev", {"hostAddress": "0.0.0.0", "otlpRequireToken": "true", "externalHost": "devbox.lan"})
    assert run.error is None, run.error
    published = {(name, p["ip"]) for name, c in containers(run).items() for p in c.inputs.get("ports") or []}
    assert ("prometheus", "127.0.0.1") in published and ("prometheus", "0.0.0.0") not in published
    assert {ip for name, ip in published if name != "prometheus"} == {"0.0.0.0"}
    assert run.outputs["prometheusUrl"] == "http://localhost:9090"


def test_health_checks_gate_dependants_where_the_image_can_run_one(dev):
    expected = {
        "prometheus": ["CMD", "wget", "-q", "--spider", "http://localhost:9090/-/ready"],
        "tempo": ["CMD", "/tempo", "-health"],
        "loki": ["CMD", "/usr/bin/loki", "-health"],
        "grafana": ["CMD", "curl", "-fsS", "http://localhost:3000/api/health"],
    }
    for name, container in containers(dev).items():
        if name in expected:
            assert container.inputs["healthcheck"]["tests"] == expected[name]
            assert container.inputs["wait"] is True
        else:
            # The collector image is FROM scratch: nothing inside can probe it.
            assert "healthcheck" not in container.inputs
            assert container.inputs.get("wait") is False


def test_containers_restart_and_have_memory_limits(dev, settings):
    for name, container in containers(dev).items():
        assert container.inputs["restart"] == "unless-stopped"
        expected = settings.container_metrics.memory_mb if name == cadvisor.NAME else settings.memory_mb(name)
        assert container.inputs["memory"] == expected
        assert container.inputs["logOpts"] == {"max-size": "10m", "max-file": "3"}


def test_each_service_is_a_component_that_owns_its_resources(dev):
    tokens = {
        "collector": "observability:components:Collector",
        "prometheus": "observability:components:Prometheus",
        "tempo": "observability:components:Tempo",
        "loki": "observability:components:Loki",
        "grafana": "observability:components:Grafana",
        "cadvisor": "observability:components:ContainerMetrics",
    }
    for container in dev.of_type(CONTAINER):
        assert container.parent_types[-1] == tokens[container.name.split("-")[0]]
    for image in dev.of_type(IMAGE):
        assert image.parent_types[-1] == tokens[image.name.split("-")[0]]
    (network,) = dev.of_type(NETWORK)
    assert network.parent_types[-1] == "observability:platform:Docker"


def test_grafana_provider_uses_the_external_url_and_a_secret_credential(dev):
    (provider,) = dev.of_type(GRAFANA_PROVIDER)
    assert provider.inputs["url"] == "http://localhost:3000"
    assert is_secret(provider.inputs["auth"])
    assert unwrap(provider.inputs["auth"]) == f"admin:{MOCK_PASSWORD}"
    grafana_resources = [r for r in dev.resources if r.type.startswith("grafana:")]
    assert grafana_resources
    assert all(r.provider and r.provider.split("::")[-2] == "grafana" for r in grafana_resources)


def test_the_grafana_provider_sits_at_the_root_and_keeps_its_deployed_urn(dev):
    """`pulumi up --target` of part of the stack includes the root, not an untargeted component:
    a provider under GrafanaContent made such updates fail. Its alias keeps the deployed provider."""
    (provider,) = dev.of_type(GRAFANA_PROVIDER)
    urns = EngineUrns(dev)
    assert urns.of(provider) == "urn:pulumi:dev::observability::pulumi:providers:grafana::grafana"
    assert urns.aliases(provider) == {"urn:pulumi:dev::observability::observability:grafana:Content$pulumi:providers:grafana::grafana"}
    # Every Grafana resource is created through it (a provider reference is "<urn>::<id>").
    references = {r.provider for r in dev.resources if r.type.startswith("grafana:")}
    assert references == {f"{provider.urn}::grafana-id"}


def _datasources(run) -> dict[str, dict]:
    return {
        d.inputs["uid"]: {**d.inputs, "jsonData": json.loads(d.inputs["jsonDataEncoded"])}
        for d in run.of_type(DATASOURCE)
    }


def test_datasources_have_fixed_uids_and_internal_urls(dev):
    sources = _datasources(dev)
    assert {uid: (s["type"], s["url"]) for uid, s in sources.items()} == {
        "prometheus": ("prometheus", "http://prometheus:9090"),
        "tempo": ("tempo", "http://tempo:3200"),
        "loki": ("loki", "http://loki:3100"),
    }
    assert sources["prometheus"]["isDefault"] is True


def test_datasources_are_correlated(dev):
    sources = _datasources(dev)
    exemplars = sources["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert {(e["name"], e["datasourceUid"]) for e in exemplars} == {("trace_id", "tempo")}

    tempo_json = sources["tempo"]["jsonData"]
    logs = tempo_json["tracesToLogsV2"]
    assert logs["datasourceUid"] == "loki"
    assert {"key": "service.name", "value": "service_name"} in logs["tags"]
    assert "trace_id" in logs["query"] and "${__trace.traceId}" in logs["query"]
    metrics = tempo_json["tracesToMetrics"]
    assert metrics["datasourceUid"] == "prometheus"
    assert all("$__tags" in q["query"] for q in metrics["queries"])
    assert tempo_json["serviceMap"] == {"datasourceUid": "prometheus"}
    assert tempo_json["nodeGraph"] == {"enabled": True}

    (derived,) = sources["loki"]["jsonData"]["derivedFields"]
    assert (derived["matcherType"], derived["matcherRegex"], derived["datasourceUid"]) == ("label", "trace_id", "tempo")
    assert derived["url"] == "${__value.raw}"


def test_folders_and_dashboards_come_from_the_configs_directory(dev):
    folders = {f.inputs["uid"]: f.inputs["title"] for f in dev.of_type(FOLDER) if f.parent_types[-1] == "observability:grafana:Content"}
    expected = load_folders()
    assert folders == {f.uid: f.title for f in expected}
    dashboards = {json.loads(d.inputs["configJson"])["uid"]: d for d in dev.of_type(DASHBOARD) if d.parent_types[-1] == "observability:grafana:Content"}
    for folder in expected:
        for dashboard in folder.dashboards:
            registered = dashboards.pop(dashboard.uid)
            assert registered.inputs["folder"] == folder.uid
            assert json.loads(registered.inputs["configJson"]) == for_stack(dashboard.model, set(DATASOURCE_UIDS), {})
    assert dashboards == {}


def test_dev_stack_health_shows_containers_and_no_cloudwatch(dev):
    (health,) = [json.loads(d.inputs["configJson"]) for d in dev.of_type(DASHBOARD) if "stack-health" in d.name]
    sources = {(t.get("datasource") or p["datasource"])["uid"] for p, t in targets(health)}
    assert CLOUDWATCH_UID not in sources and CLOUDWATCH_UID not in _datasources(dev)
    assert any("container_memory_working_set_bytes" in t["expr"] for _, t in targets(health) if "expr" in t)


def test_grafana_runs_with_a_viewer_anonymous_role_in_dev(dev):
    envs = containers(dev)["grafana"].inputs["envs"]
    assert "GF_AUTH_ANONYMOUS_ENABLED=true" in envs
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE=Viewer" in envs
    assert "GF_ANALYTICS_REPORTING_ENABLED=false" in envs
    assert not any(e.startswith("GF_AUTH_ANONYMOUS_ORG_ROLE=Admin") for e in envs)
    # Plain HTTP on localhost: a Secure cookie would never be sent back, so no login would hold.
    assert not any(e.startswith(("GF_SECURITY_COOKIE_SECURE", "GF_SECURITY_STRICT_TRANSPORT_SECURITY")) for e in envs)


def test_anonymous_access_can_be_turned_off():
    run = run_program("dev", {"grafanaAnonymousRole": "none"})
    envs = containers(run)["grafana"].inputs["envs"]
    assert "GF_AUTH_ANONYMOUS_ENABLED=false" in envs
    assert not any(e.startswith("GF_AUTH_ANONYMOUS_ORG_ROLE") for e in envs)


def test_admin_password_is_generated_and_never_in_plain_text(dev):
    assert dev.outputs["grafanaAdminPassword"] == MOCK_PASSWORD
    assert "grafanaAdminPassword" in dev.secret_outputs
    grafana = containers(dev)["grafana"]
    assert is_secret(grafana.inputs["uploads"])
    assert "GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/gf_security_admin_password" in grafana.inputs["envs"]
    assert not any(e.startswith("GF_SECURITY_ADMIN_PASSWORD=") for e in grafana.inputs["envs"])

    for resource in dev.resources:
        for text in plain_strings(resource.inputs):
            assert MOCK_PASSWORD not in text, f"{resource.type} {resource.name}"


def test_collector_token_and_grafana_metrics_password_are_files_their_programs_can_read():
    """The collector (uid 10001) and Prometheus (nobody) read root's 0440 uploads as group 0;
    neither value is in a container's environment, which `docker inspect` shows."""
    run = run_program("dev", {"otlpRequireToken": "true"})
    assert run.error is None, run.error
    defined = containers(run)
    for service, secret, token in (
        ("collector", collector.BEARER_TOKEN_ENV, "mock-password-otlp-bearer-token"),
        ("prometheus", prometheus.GRAFANA_METRICS_PASSWORD, "mock-password-grafana-metrics-password"),
        ("grafana", "GF_METRICS_BASIC_AUTH_PASSWORD", "mock-password-grafana-metrics-password"),
    ):
        container = defined[service]
        files = {u["file"]: u for u in unwrap(container.inputs["uploads"])}
        assert files[secret_file(secret)]["content"] == token and files[secret_file(secret)]["permissions"] == "0440"
        assert is_secret(container.inputs["uploads"])
        assert not any(token in text for text in plain_strings(container.inputs)), service
        # Grafana's image already runs in group 0.
        assert container.inputs.get("groupAdds") == (None if service == "grafana" else ["0"]), service
    assert f"{collector.BEARER_TOKEN_FILE_ENV}={secret_file(collector.BEARER_TOKEN_ENV)}" in defined["collector"].inputs["envs"]
    assert "GF_METRICS_BASIC_AUTH_PASSWORD__FILE=/run/secrets/gf_metrics_basic_auth_password" in defined["grafana"].inputs["envs"]


def test_exports(dev):
    assert dev.outputs == {
        "grafanaUrl": "http://localhost:3000",
        "grafanaAdminUser": "admin",
        "grafanaAdminPassword": MOCK_PASSWORD,
        "otlpGrpcEndpoint": "http://localhost:4317",
        "otlpHttpEndpoint": "http://localhost:4318",
        "prometheusUrl": "http://localhost:9090",
        "alertRouting": {},
        "alertNotifications": dev.outputs["alertNotifications"],
    }
    assert dev.outputs["alertNotifications"].startswith("No contact point configured")
    assert dev.secret_outputs == {"grafanaAdminPassword"}


def test_dev_stack_does_not_import_pulumi_aws():
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(project_path())!r})
        from tests.harness import run_program
        run = run_program("dev")
        assert run.error is None, run.error
        print(sorted(m for m in ("pulumi_aws", "pulumi_docker", "pulumiverse_grafana") if m in sys.modules))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=project_path())
    # pulumi_docker present proves the program ran in that process.
    assert result.stdout.strip().splitlines()[-1] == "['pulumi_docker', 'pulumiverse_grafana']"


def test_project_name_matches_the_config_namespace():
    for stack_file in project_path().glob("Pulumi.*.yaml"):
        keys = yaml.safe_load(stack_file.read_text())["config"]
        # Provider settings (aws:region) are the only other namespace a stack file may use.
        assert all(key.startswith((f"{PROJECT}:", "aws:")) for key in keys), stack_file.name


def test_a_dev_stack_on_the_network_links_to_the_name_people_reach():
    run = run_program("dev", {"hostAddress": "0.0.0.0", "otlpRequireToken": "true", "externalHost": "devbox.lan"})
    assert run.error is None, run.error
    envs = containers(run)["grafana"].inputs["envs"]
    # Alert and share links carry Grafana's root URL: the team's name for the host, not localhost.
    assert "GF_SERVER_ROOT_URL=http://devbox.lan:3000/" in envs
    assert run.outputs["grafanaUrl"] == "http://devbox.lan:3000"
    assert run.outputs["otlpHttpEndpoint"] == "http://devbox.lan:4318"


def test_a_user_name_stored_encrypted_never_shows_in_docker_inspect():
    run = run_program("dev", {"grafanaAdminUser": "ops-admin-7f3"}, secret_keys=("grafanaAdminUser",))
    assert run.error is None, run.error
    grafana = containers(run)["grafana"]
    assert not [e for e in plain_strings(grafana.inputs.get("envs")) if "ops-admin-7f3" in e]
    assert "GF_SECURITY_ADMIN_USER__FILE=/run/secrets/gf_security_admin_user" in grafana.inputs["envs"]
    assert "grafanaAdminUser" in run.secret_outputs


def test_with_the_token_on_a_local_web_app_still_has_its_route():
    """Server SDKs then need the token; a page cannot keep one, so the token-free browser route is
    published on the host too (CORS from corsAllowedOrigins, the same limits as on prod)."""
    run = run_program("dev", {"otlpRequireToken": "true"})
    assert run.error is None, run.error
    ports = {(p["internal"], p["external"], p["ip"]) for p in containers(run)["collector"].inputs["ports"]}
    assert (4319, 4319, "127.0.0.1") in ports
    config = yaml.safe_load(uploads(containers(run)["collector"])[collector.CONFIG_PATH])
    assert config["receivers"]["otlp/browser"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4319"
    # Without the token the main receiver takes browsers too: no second route.
    assert 4319 not in {p["internal"] for p in containers(run_program("dev"))["collector"].inputs["ports"]}

