"""infra/knative/: the Knative Service and the KServe InferenceService for the function's
container, checked field by field against the schemas they are applied to.

Knative: the fields below are transcribed from the OpenAPI schema of Knative Serving's Service
CRD, config/core/300-resources/service.yaml in github.com/knative/serving (commit 98e5ef90aa70,
knative-v1.23.0 + 5, read 2026-12-03): the part of it these manifests use, in the CRD's own
form (type, properties, required, additionalProperties, x-kubernetes-int-or-string,
x-kubernetes-preserve-unknown-fields), so one walker checks a manifest against either. With
KNATIVE_SERVICE_CRD=/path/to/service.yaml (that file), the tests also check the manifest against
the whole CRD and that every transcribed node is in it.

KServe: ComponentExtensionSpec (pkg/apis/serving/v1beta1/component.go in github.com/kserve/kserve,
read 2026-12-03) plus the Kubernetes container fields, the same container schema as Knative's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SERVICE = REPO / "infra" / "knative" / "service.yaml"
ISVC = REPO / "infra" / "knative" / "inferenceservice.yaml"

Schema = dict[str, Any]


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    node: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        node["required"] = list(required)
    return node


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
INT_OR_STR: Schema = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
}
MAP_STR: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
PRESERVE: Schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

PROBE = obj(
    {
        "httpGet": obj({"path": STR, "port": INT_OR_STR, "host": STR, "scheme": STR}),
        "initialDelaySeconds": INT,
        "periodSeconds": INT,
        "timeoutSeconds": INT,
        "failureThreshold": INT,
        "successThreshold": INT,
    }
)
CONTAINER = obj(
    {
        "name": STR,
        "image": STR,
        "args": array(STR),
        "command": array(STR),
        "ports": array(obj({"containerPort": INT, "name": STR, "protocol": STR})),
        "env": array(obj({"name": STR, "value": STR}, required=("name",))),
        "resources": obj(
            {
                "limits": {"type": "object", "additionalProperties": INT_OR_STR},
                "requests": {"type": "object", "additionalProperties": INT_OR_STR},
            }
        ),
        "startupProbe": PROBE,
        "readinessProbe": PROBE,
        "livenessProbe": PROBE,
    }
)
# openAPIV3Schema of serving.knative.dev/v1 Service, the part used here.
KNATIVE_SERVICE = obj(
    {
        "apiVersion": STR,
        "kind": STR,
        "metadata": {"type": "object"},
        "spec": obj(
            {
                "template": obj(
                    {
                        "metadata": obj(
                            {"annotations": MAP_STR, "labels": MAP_STR, "name": STR},
                            **{"x-kubernetes-preserve-unknown-fields": True},
                        ),
                        "spec": obj(
                            {
                                "containerConcurrency": INT,
                                "timeoutSeconds": INT,
                                "responseStartTimeoutSeconds": INT,
                                "idleTimeoutSeconds": INT,
                                "serviceAccountName": STR,
                                # behind the feature flags kubernetes.podspec-nodeselector and
                                # kubernetes.podspec-tolerations
                                "nodeSelector": MAP_STR,
                                "tolerations": array(PRESERVE),
                                "containers": array(CONTAINER),
                            },
                            required=("containers",),
                        ),
                    }
                )
            }
        ),
    }
)
# serving.kserve.io/v1beta1 InferenceService with a custom predictor container.
KSERVE_ISVC = obj(
    {
        "apiVersion": STR,
        "kind": STR,
        "metadata": {"type": "object"},
        "spec": obj(
            {
                "predictor": obj(
                    {
                        # ComponentExtensionSpec
                        "minReplicas": INT,
                        "maxReplicas": INT,
                        "scaleTarget": INT,
                        "scaleMetric": STR,
                        "containerConcurrency": INT,
                        "timeout": INT,
                        "labels": MAP_STR,
                        "annotations": MAP_STR,
                        # PodSpec
                        "containers": array(CONTAINER),
                        "nodeSelector": MAP_STR,
                        "tolerations": array(PRESERVE),
                    }
                )
            },
            required=("predictor",),
        ),
    }
)


def violations(value: Any, schema: Schema, path: str = "") -> list[str]:
    """Where `value` breaks `schema` (a structural OpenAPI v3 schema as Kubernetes CRDs write
    them): unknown fields, wrong types, missing required fields."""
    where = path or "<root>"
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, int | str) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected an integer or a string"]
    kind = schema.get("type")
    if kind == "string":
        return [] if isinstance(value, str) else [f"{where}: expected a string, got {value!r}"]
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected an integer, got {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected a boolean"]
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [
            p
            for i, item in enumerate(value)
            for p in violations(item, schema["items"], f"{path}[{i}]")
        ]
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping"]
        if path == ".metadata":
            return []  # ObjectMeta: the API server checks it, not the CRD's schema
        found = [
            f"{path}.{key}: required" for key in schema.get("required", []) if key not in value
        ]
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                found += violations(item, properties[key], f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += violations(item, schema["additionalProperties"], f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                found.append(f"{path}.{key}: not a field of the schema")
        return found
    return []


def load(path: Path) -> dict:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert len(documents) == 1, f"{path}: one manifest expected"
    return documents[0]


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def full_crd_schema() -> Schema | None:
    path = os.environ.get("KNATIVE_SERVICE_CRD")
    if not path:
        return None
    crd = yaml.safe_load(Path(path).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


# --- the checker itself --------------------------------------------------------------------


def test_the_checker_finds_what_a_cluster_would_refuse():
    good = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}},
    }
    assert violations(good, KNATIVE_SERVICE) == []
    bad = yaml.safe_load(yaml.safe_dump(good))
    bad["spec"]["template"]["spec"]["containerConcurency"] = 4  # misspelt
    bad["spec"]["template"]["spec"]["timeoutSeconds"] = "300"  # a string
    bad["spec"]["template"]["spec"]["containers"][0]["env"] = [{"value": "1"}]  # no name
    assert violations(bad, KNATIVE_SERVICE) == [
        ".spec.template.spec.containers[0].env[0].name: required",
        ".spec.template.spec.containerConcurency: not a field of the schema",
        ".spec.template.spec.timeoutSeconds: expected an integer, got '300'",
    ]
    no_containers = {"spec": {"template": {"spec": {}}}}
    assert ".spec.template.spec.containers: required" in violations(no_containers, KNATIVE_SERVICE)


# --- the Knative Service -------------------------------------------------------------------


def test_knative_service_matches_the_schema():
    manifest = load(SERVICE)
    assert (manifest["apiVersion"], manifest["kind"]) == ("serving.knative.dev/v1", "Service")
    assert violations(manifest, KNATIVE_SERVICE) == []


def test_knative_service_settings_match_the_cloud_run_gpu_service():
    """The settings deploy.sh --gpu gives Cloud Run, in Knative's fields."""
    template = load(SERVICE)["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations == {
        "autoscaling.knative.dev/min-scale": "0",
        "autoscaling.knative.dev/max-scale": "1",
    }
    assert not any(key.startswith("run.googleapis.com/") for key in annotations)
    spec = template["spec"]
    assert spec["containerConcurrency"] == 4
    assert spec["timeoutSeconds"] == 300
    # The function abandons a video before the platform cuts the request.
    assert spec["timeoutSeconds"] > 240  # VIDEO_DEADLINE_S's default
    (container,) = spec["containers"]
    assert container["image"] == "IMAGE_REF"
    assert container["ports"] == [{"containerPort": 8080}]
    assert env(container) == {"REQUIRE_GPU": "1", "THREADS": "4"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["limits"]["memory"] == "16Gi"
    for probe in ("startupProbe", "readinessProbe"):
        # No port: Knative probes the container's port itself.
        assert container[probe]["httpGet"] == {"path": "/healthz"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 240


def test_knative_service_against_the_whole_crd():
    schema = full_crd_schema()
    if schema is None:
        pytest.skip(
            "set KNATIVE_SERVICE_CRD to knative/serving's config/core/300-resources/service.yaml"
        )
    assert violations(load(SERVICE), schema) == []
    assert violations(load(SERVICE), _strip_preserve(schema)) == []


def test_transcription_is_part_of_the_crd():
    """Every node transcribed above is in Knative's CRD, with the same type."""
    schema = full_crd_schema()
    if schema is None:
        pytest.skip(
            "set KNATIVE_SERVICE_CRD to knative/serving's config/core/300-resources/service.yaml"
        )
    assert _not_in(KNATIVE_SERVICE, schema) == []


def _strip_preserve(schema: Any) -> Any:
    """The CRD without x-kubernetes-preserve-unknown-fields under the pod template, where
    Knative's webhook (not the schema) refuses unknown fields: the check is then as strict."""
    if isinstance(schema, dict):
        return {
            k: _strip_preserve(v)
            for k, v in schema.items()
            if not (k == "x-kubernetes-preserve-unknown-fields" and "properties" in schema)
        }
    if isinstance(schema, list):
        return [_strip_preserve(v) for v in schema]
    return schema


def _not_in(part: Schema, whole: Schema, path: str = "") -> list[str]:
    found = []
    if part.get("type") != whole.get("type"):
        found.append(f"{path or '<root>'}: type {part.get('type')} vs {whole.get('type')}")
    for key, sub in part.get("properties", {}).items():
        if key not in whole.get("properties", {}):
            found.append(f"{path}.{key}: not in the CRD")
        else:
            found += _not_in(sub, whole["properties"][key], f"{path}.{key}")
    if "items" in part:
        found += _not_in(part["items"], whole.get("items", {}), f"{path}[]")
    return found


# --- the KServe InferenceService -----------------------------------------------------------


def test_kserve_inference_service_matches_the_schema():
    manifest = load(ISVC)
    assert (manifest["apiVersion"], manifest["kind"]) == (
        "serving.kserve.io/v1beta1",
        "InferenceService",
    )
    assert violations(manifest, KSERVE_ISVC) == []
    assert manifest["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Knative"}


def test_kserve_runs_the_same_container_as_the_knative_service():
    predictor = load(ISVC)["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 1)
    assert (predictor["containerConcurrency"], predictor["timeout"]) == (4, 300)
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    (knative,) = load(SERVICE)["spec"]["template"]["spec"]["containers"]
    for key in ("image", "env", "resources", "startupProbe", "readinessProbe"):
        assert container[key] == knative[key], key
