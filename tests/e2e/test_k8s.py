"""The Kubernetes manifests of a market shard, validated offline against the API schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mm_daemon.config import parse_config
from tests.e2e.conftest import DEPLOY

pytestmark = pytest.mark.e2e

K8S = DEPLOY / "k8s"
# The oldest Kubernetes release still commonly run, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend((path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


def _by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [doc for _, doc in _documents() if doc["kind"] == kind]
    return doc


def _container() -> dict[str, Any]:
    (container,) = _by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    for path, doc in _documents():
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any problem
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "mm-daemon", path.name


def test_the_validator_rejects_a_misspelt_field() -> None:
    deployment = _by_kind("Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_shard_has_every_resource_it_needs() -> None:
    kinds = {doc["kind"] for _, doc in _documents()}
    assert {"Deployment", "ConfigMap", "Secret", "Service", "PersistentVolumeClaim"} <= kinds


def _secret_environment() -> dict[str, str]:
    data: dict[str, str] = _by_kind("Secret")["stringData"]
    return data


def test_the_configmap_holds_a_valid_daemon_config_serving_metrics_on_every_interface() -> None:
    raw = yaml.safe_load(_by_kind("ConfigMap")["data"]["config.yaml"])
    config = parse_config(raw, environ=_secret_environment())
    assert config.metrics.host == "0.0.0.0"  # noqa: S104  the pod's port must be reachable
    assert config.metrics.port == _container()["ports"][0]["containerPort"]


def test_the_control_api_beyond_loopback_takes_its_token_from_the_secret() -> None:
    raw = yaml.safe_load(_by_kind("ConfigMap")["data"]["config.yaml"])
    config = parse_config(raw, environ=_secret_environment())
    assert config.control.enabled
    assert config.control.token is not None
    assert "token:" not in _by_kind("ConfigMap")["data"]["config.yaml"]


def test_the_deployment_mounts_the_configmap_where_the_image_reads_its_config() -> None:
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    container = _container()
    config_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == _by_kind("ConfigMap")["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == config_volume["name"])
    assert container["args"] == ["run", "--config", f"{mount['mountPath']}/config.yaml"]


def test_keys_come_from_the_secret_as_environment_variables() -> None:
    secret = _by_kind("Secret")
    refs = [e["secretRef"]["name"] for e in _container()["envFrom"]]
    assert refs == [secret["metadata"]["name"]]
    keys = secret["stringData"]
    assert all(key.startswith("MMD_VENUES__") or key == "MMD_CONTROL__TOKEN" for key in keys)
    raw = _by_kind("ConfigMap")["data"]["config.yaml"]
    assert "api_key:" not in raw
    assert "api_secret:" not in raw


def test_the_pod_is_annotated_for_scraping_on_its_metrics_port() -> None:
    annotations = _by_kind("Deployment")["spec"]["template"]["metadata"]["annotations"]
    port = _container()["ports"][0]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_probes_use_health_for_liveness_and_ready_for_readiness() -> None:
    container = _container()
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}


def test_resource_requests_are_set() -> None:
    container = _container()
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_the_pod_runs_as_the_images_non_root_user_with_a_read_only_root() -> None:
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert _container()["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in _container()["volumeMounts"]}
    assert "/var/lib/mm-daemon" in mounts  # the image's declared volume


def test_the_journal_lives_on_a_persistent_volume_claim_of_the_shard() -> None:
    pod = _by_kind("Deployment")["spec"]["template"]["spec"]
    claim = _by_kind("PersistentVolumeClaim")
    volume = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    mount = next(m for m in _container()["volumeMounts"] if m["name"] == volume["name"])
    raw = yaml.safe_load(_by_kind("ConfigMap")["data"]["config.yaml"])
    assert str(parse_config(raw, environ=_secret_environment()).state.dir) == mount["mountPath"]


def test_one_daemon_per_market_never_two_at_once() -> None:
    spec = _by_kind("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"


def test_the_service_selects_the_deployments_pods() -> None:
    service = _by_kind("Service")
    labels = _by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
