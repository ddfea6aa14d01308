"""deploy/k8s: every core resource validated against the Kubernetes JSON schemas
(kubernetes-validate, strict: unknown fields are errors) for the oldest and newest versions it
ships; the custom resources (ServiceMonitor, KServe InferenceService) and the Kustomization have no
schema there and are checked field by field; then the manifests are checked against each other,
the image and the settings.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
from deploy_tools import IMAGE_UID, K8S, setting_variables, yaml_documents
from kubernetes_validate.utils import SchemaNotFoundError, all_versions

# No schema in kubernetes-validate: the Prometheus operator's and KServe's CRDs, kustomize's file.
CUSTOM_KINDS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "InferenceService": "serving.kserve.io/v1beta1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
VERSIONS = [all_versions()[0], all_versions()[-1]]
Resource = dict[str, Any]


def manifests() -> dict[tuple[str, str], Resource]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml_documents(path):
            out[(doc["kind"], doc.get("metadata", {}).get("name", path.name))] = doc
    return out


RESOURCES = manifests()


def one(kind: str, name: str = "candor") -> Resource:
    return RESOURCES[(kind, name)]


def core_resources() -> list[tuple[str, str]]:
    return [key for key in RESOURCES if key[0] not in CUSTOM_KINDS]


def container(workload: Resource) -> Resource:
    (first,) = workload["spec"]["template"]["spec"]["containers"]
    return first


def env_values(c: Resource) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in c.get("env", [])}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("key", core_resources(), ids="/".join)
def test_core_resources_validate_against_the_kubernetes_schemas(key: tuple[str, str], version: str) -> None:
    kubernetes_validate.validate(RESOURCES[key], version, strict=True)


def test_custom_resources_are_the_only_ones_without_a_schema() -> None:
    kinds = {kind: RESOURCES[key]["apiVersion"] for key in RESOURCES if (kind := key[0]) in CUSTOM_KINDS}
    assert kinds == CUSTOM_KINDS
    for kind in kinds:
        (key,) = [k for k in RESOURCES if k[0] == kind]
        with pytest.raises(SchemaNotFoundError):
            kubernetes_validate.validate(RESOURCES[key], VERSIONS[-1], strict=True)


def test_the_validator_rejects_an_unknown_field() -> None:
    """The strict check has teeth: a misspelt field in the pod template fails."""
    deployment = copy.deepcopy(one("Deployment"))
    container(deployment)["readinesProbe"] = container(deployment).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest_but_the_kserve_example() -> None:
    kustomization = one("Kustomization", "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files - {"inferenceservice.yaml"}
    assert kustomization["namespace"] == one("Namespace")["metadata"]["name"]
    (image,) = kustomization["images"]
    assert container(one("Deployment"))["image"].split(":")[0] == image["name"]


def test_deployment_probes_resources_and_security() -> None:
    deployment = one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment)
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= c["resources"]["limits"].keys()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == IMAGE_UID  # the Dockerfile's USER
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = c["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert pod["enableServiceLinks"] is False  # else Service "candor" injects CANDOR_PORT=tcp://...
    assert pod["automountServiceAccountToken"] is False


def test_writable_paths_are_empty_dirs() -> None:
    """With a read-only root, the state dir of the settings and /tmp are emptyDir volumes."""
    deployment = one("Deployment")
    settings = one("ConfigMap", "candor-settings")["data"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}
    for path in (settings["CANDOR_STATE_DIR"], "/tmp"):
        assert "emptyDir" in volumes[mounts[path]["name"]], path
        assert not mounts[path].get("readOnly", False), path
    assert mounts[settings["CANDOR_MODELS_DIR"]]["readOnly"] is True


def test_settings_come_from_the_configmap_and_are_the_service_settings() -> None:
    deployment = one("Deployment")
    c = container(deployment)
    settings = one("ConfigMap", "candor-settings")["data"]
    assert c["envFrom"] == [{"configMapRef": {"name": "candor-settings"}}]
    assert set(settings) <= setting_variables()
    assert {e["name"] for e in c["env"]} <= setting_variables()
    (token,) = c["env"]
    assert token["name"] == "CANDOR_AUTH_TOKEN"
    (port,) = c["ports"]
    assert str(port["containerPort"]) == settings["CANDOR_PORT"]
    assert settings["CANDOR_HOST"] == "0.0.0.0"


def test_the_pod_never_runs_without_the_auth_secret() -> None:
    """A missing Secret stops the pod (not optional) and the settings refuse a start without a token."""
    (token,) = container(one("Deployment"))["env"]
    assert token["valueFrom"]["secretKeyRef"].get("optional", False) is False
    assert one("ConfigMap", "candor-settings")["data"]["CANDOR_AUTH_REQUIRED"] == "true"


def test_the_store_url_names_the_redis_service() -> None:
    store = urlparse(one("ConfigMap", "candor-settings")["data"]["CANDOR_STORE_URL"])
    redis = one("Service", "candor-redis")
    assert store.scheme == "redis" and store.hostname == redis["metadata"]["name"]
    assert store.port in [p["port"] for p in redis["spec"]["ports"]]
    redis_pod = one("Deployment", "candor-redis")["spec"]["template"]
    assert redis["spec"]["selector"].items() <= redis_pod["metadata"]["labels"].items()
    assert redis_pod["spec"]["securityContext"]["runAsNonRoot"] is True


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def test_service_hpa_pdb_and_servicemonitor_point_at_the_deployment() -> None:
    deployment, service = one("Deployment"), one("Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert selects(service["spec"]["selector"], pod_labels)
    port_names = {p["name"] for p in container(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "candor",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert selects(one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    monitor = one("ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The operator names the job after the Service: the alert rules select job="candor".
    assert service["metadata"]["name"] == "candor"


def test_kserve_inference_service_runs_candor_as_a_custom_predictor() -> None:
    isvc = one("InferenceService", "candor-kserve")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    (c,) = isvc["spec"]["predictor"]["containers"]
    assert c["name"] == "kserve-container"
    assert c["image"] == container(one("Deployment"))["image"]
    env = env_values(c)
    assert set(env) <= setting_variables()
    (port,) = c["ports"]
    assert port["containerPort"] == 8080 and env["CANDOR_PORT"] == "8080" and env["CANDOR_HOST"] == "0.0.0.0"
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert c["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["runAsUser"] == IMAGE_UID
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
    # The container spec is a core Container: validate it inside a throwaway Deployment.
    probe = copy.deepcopy(one("Deployment"))
    probe["spec"]["template"]["spec"]["containers"] = [c]
    kubernetes_validate.validate(probe, VERSIONS[-1], strict=True)


def test_the_namespace_enforces_the_restricted_pod_security_standard() -> None:
    namespace = one("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_manifest_files_parse() -> None:
    assert all(yaml_documents(path) for path in K8S.glob("*.yaml"))
