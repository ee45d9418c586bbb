"""deploy/: what `kubectl apply -k` installs, checked before it reaches a cluster.

- every kustomization renders with the real kubectl, and every rendered object validates
  against the Kubernetes 1.28-1.32 schemas (strict: unknown fields are errors); Prometheus
  Operator objects, which have no schema there, get their shape checked here;
- RBAC grants exactly what the code calls: the Kubernetes API calls are found in exporter/ and
  adapter/ by reading their source, each is mapped to the permission it needs, and every
  ServiceAccount's grants must cover its calls and nothing more;
- flags in the manifests exist in the programs' real --help;
- the rules ConfigMap is config/rules.yaml; the example HPAs use metrics the default rules serve;
- promtool checks the scrape config and the recording rules and runs their unit tests.
"""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from adapter.config import load_config_file
from adapter.kube_cache import WATCHED_PATHS
from adapter.resources import NAMESPACES, NODES, PODS, BuiltinResourceCatalog, GroupResource
from adapter.rules import compile_config
from exporter.metrics import METRICS
from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
RULES_FILE = REPO_ROOT / "config" / "rules.yaml"
KUBERNETES_VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32")
# Every kustomization under deploy/ that renders on its own (kind: Kustomization).
OVERLAYS = (
    "base",
    "exporter-common",
    "exporter-daemonset",
    "exporter-cluster",
    "examples",
    "examples/with-prometheus-operator",
)
# Kustomize components are rendered through an overlay that uses them.
COMPONENTS = {"prometheus-operator": "examples/with-prometheus-operator"}
INSTALLS = ("exporter-daemonset", "exporter-cluster")
PROGRAMS = ("kubemetrics-exporter", "kubemetrics-adapter")
NON_ROOT_USER = 65532

Obj = dict[str, Any]


# --- rendering -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(kubectl_binary: str) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [kubectl_binary, "kustomize", str(DEPLOY / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"kubectl kustomize deploy/{overlay}: {result.stderr}"
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def by_kind(objects: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: Iterable[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def containers(objects: Iterable[Obj]) -> Iterator[tuple[Obj, Obj]]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "DaemonSet"):
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield obj, container


def test_every_kustomization_is_rendered_by_these_tests() -> None:
    found: dict[str, str] = {}
    for path in DEPLOY.rglob("kustomization.yaml"):
        kind = yaml.safe_load(path.read_text(encoding="utf-8"))["kind"]
        found[path.parent.relative_to(DEPLOY).as_posix()] = kind
    assert found == {
        **dict.fromkeys(OVERLAYS, "Kustomization"),
        **dict.fromkeys(COMPONENTS, "Component"),
    }


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_objects_validate_against_kubernetes_schemas(
    rendered: dict[str, list[Obj]], overlay: str, version: str
) -> None:
    checked = 0
    for obj in rendered[overlay]:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # no schema in kubernetes-validate; see test_prometheus_operator_objects
        where = f"{obj['kind']} {obj['metadata'].get('name')} in deploy/{overlay}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{where} is invalid for Kubernetes {version}: {err}")
        checked += 1
    assert checked > 0


# ServiceMonitor fields used here, from the Prometheus Operator's monitoring.coreos.com/v1 CRD.
SERVICE_MONITOR_SPEC_KEYS = {"selector", "namespaceSelector", "endpoints", "jobLabel"}
ENDPOINT_KEYS = {
    "port",
    "path",
    "scheme",
    "interval",
    "scrapeTimeout",
    "honorLabels",
    "honorTimestamps",
    "relabelings",
    "metricRelabelings",
    "tlsConfig",
}


def test_prometheus_operator_objects_select_the_exporter_service(
    rendered: dict[str, list[Obj]],
) -> None:
    objects = rendered[COMPONENTS["prometheus-operator"]]
    monitors = [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert [(m["apiVersion"], m["kind"]) for m in monitors] == [
        ("monitoring.coreos.com/v1", "ServiceMonitor")
    ]
    (monitor,) = monitors
    spec = monitor["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC_KEYS
    services = [
        s
        for s in by_kind(objects, "Service")
        if s["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
        and spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in services] == ["kubemetrics-exporter"]
    port_names = {p["name"] for p in services[0]["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= ENDPOINT_KEYS
        assert endpoint["port"] in port_names
        # The operator's namespace/pod/container target labels must not rename ours.
        assert endpoint["honorLabels"] is True
        assert re.fullmatch(r"\d+s", endpoint["interval"])


# --- workloads -----------------------------------------------------------------------------------


def security_problems(pod_spec: Obj, container: Obj) -> list[str]:
    pod_sc = pod_spec.get("securityContext", {})
    sc = container.get("securityContext", {})
    checks = {
        "runAsNonRoot": pod_sc.get("runAsNonRoot") is True,
        "runAsUser is the image's user": pod_sc.get("runAsUser") == NON_ROOT_USER,
        "seccomp RuntimeDefault": pod_sc.get("seccompProfile") == {"type": "RuntimeDefault"},
        "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
        "no privilege escalation": sc.get("allowPrivilegeEscalation") is False,
        "drop ALL capabilities": sc.get("capabilities") == {"drop": ["ALL"]},
        "no host namespaces": not any(
            pod_spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")
        ),
        "no hostPath": not any("hostPath" in v for v in pod_spec.get("volumes", [])),
        "memory limit": "memory" in container.get("resources", {}).get("limits", {}),
        "cpu and memory requests": {"cpu", "memory"}
        <= container.get("resources", {}).get("requests", {}).keys(),
    }
    return [name for name, ok in checks.items() if not ok]


@pytest.mark.parametrize("overlay", INSTALLS)
def test_programs_run_locked_down(rendered: dict[str, list[Obj]], overlay: str) -> None:
    seen = set()
    for workload, container in containers(rendered[overlay]):
        pod_spec = workload["spec"]["template"]["spec"]
        problems = security_problems(pod_spec, container)
        assert problems == [], f"{workload['kind']} {workload['metadata']['name']}: {problems}"
        seen.add(container["command"][0])
    assert seen == set(PROGRAMS)


def test_daemonset_reads_its_own_node_from_the_downward_api(
    rendered: dict[str, list[Obj]],
) -> None:
    daemonset = one(rendered["exporter-daemonset"], "DaemonSet", "kubemetrics-exporter")
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}) for e in container["env"]}
    assert env["NODE_NAME"] == {"fieldPath": "spec.nodeName"}
    # Without host networking the node's kubelet is reached at the host IP, not at localhost.
    assert env["NODE_IP"] == {"fieldPath": "status.hostIP"}
    assert "--node-name=$(NODE_NAME)" in container["args"]
    assert daemonset["spec"]["template"]["spec"]["hostNetwork"] is False
    assert "--all-nodes" not in container["args"]


def test_cluster_exporter_is_a_single_replica(rendered: dict[str, list[Obj]]) -> None:
    # Two replicas would each export every node: the adapter's sums would double.
    deployment = one(rendered["exporter-cluster"], "Deployment", "kubemetrics-exporter")
    assert deployment["spec"]["replicas"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--all-nodes" in container["args"]


def test_adapter_deployment_pdb_service_and_probes(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["base"]
    deployment = one(objects, "Deployment", "kubemetrics-adapter")
    assert deployment["spec"]["replicas"] == 2
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = one(objects, "PodDisruptionBudget", "kubemetrics-adapter")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
        get = container[probe]["httpGet"]
        assert (get["path"], get["scheme"], get["port"]) == (path, "HTTPS", "https")
    assert f"--secure-port={port_names['https']}" in container["args"]
    service = one(objects, "Service", "kubemetrics-adapter")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "https")]


def test_exporter_service_annotations_point_at_the_metrics_port(
    rendered: dict[str, list[Obj]],
) -> None:
    for overlay in INSTALLS:
        objects = rendered[overlay]
        service = one(objects, "Service", "kubemetrics-exporter")
        annotations = service["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        (_, container), *_ = (
            (w, c) for w, c in containers(objects) if c["command"] == ["kubemetrics-exporter"]
        )
        (port,) = container["ports"]
        assert annotations["prometheus.io/port"] == str(port["containerPort"])
        assert f"--listen-address=:{port['containerPort']}" in container["args"]


# The usual priorities (metrics-server, prometheus-adapter): v1beta2 custom metrics preferred.
API_SERVICES = {
    "v1beta1.metrics.k8s.io": 100,
    "v1beta2.custom.metrics.k8s.io": 200,
    "v1beta1.custom.metrics.k8s.io": 100,
    "v1beta1.external.metrics.k8s.io": 100,
}


def test_api_services_point_at_the_adapter_service(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["base"]
    api_services = by_kind(objects, "APIService")
    assert {a["metadata"]["name"]: a["spec"]["versionPriority"] for a in api_services} == (
        API_SERVICES
    )
    service = one(objects, "Service", "kubemetrics-adapter")
    for api_service in api_services:
        spec = api_service["spec"]
        assert api_service["metadata"]["name"] == f"{spec['version']}.{spec['group']}"
        assert spec["groupPriorityMinimum"] == 100
        assert spec["service"] == {
            "name": service["metadata"]["name"],
            "namespace": service["metadata"]["namespace"],
            "port": service["spec"]["ports"][0]["port"],
        }


# --- RBAC == the API calls the code makes ---------------------------------------------------------


@dataclass(frozen=True, order=True)
class Permission:
    """One verb on one resource; namespace "" = cluster-wide; name "" = any object."""

    group: str
    resource: str
    verb: str
    namespace: str = ""
    name: str = ""

    def covered_by(self, grant: Permission) -> bool:
        return (
            (grant.group, grant.resource, grant.verb) == (self.group, self.resource, self.verb)
            and grant.namespace in ("", self.namespace)
            and grant.name in ("", self.name)
        )


def permissions(group: str, resource: str, verbs: Iterable[str], **where: str) -> set[Permission]:
    return {Permission(group, resource, verb, **where) for verb in verbs}


# Kubernetes client methods: names like list_node, create_token_review, read_namespaced_config_map
# on the generated *Api classes, plus the raw ApiClient.call_api.
_VERB_PREFIX = re.compile(r"^(create|delete|get|list|patch|read|replace|connect|watch)_")


@cache
def kubernetes_client_methods() -> frozenset[str]:
    from kubernetes import client  # noqa: PLC0415 - only this test needs the whole module

    names = {"call_api"}
    for class_name, cls in inspect.getmembers(client, inspect.isclass):
        if class_name.endswith("Api") and class_name != "ApiClient":
            names |= {
                m.removesuffix("_with_http_info").removesuffix("_without_preload_content")
                for m in dir(cls)
                if _VERB_PREFIX.match(m)
            }
    return frozenset(names)


def source_files() -> list[Path]:
    return sorted(p for pkg in ("exporter", "adapter") for p in (REPO_ROOT / pkg).rglob("*.py"))


def client_calls_in_code() -> set[tuple[str, str]]:
    """(file, method) for every Kubernetes client method the packages name, and every
    import of a client module that makes calls another way (dynamic client, watch)."""
    methods = kubernetes_client_methods()
    found: set[tuple[str, str]] = set()
    for path in source_files():
        where = path.relative_to(REPO_ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in methods:
                found.add((where, node.attr))
            if isinstance(node, ast.ImportFrom) and node.module:
                imported = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            else:
                continue
            for name in imported:
                if name.startswith(("kubernetes.dynamic", "kubernetes.watch", "kubernetes.stream")):
                    found.add((where, f"import {name}"))
    return found


def kubelet_paths_in_code() -> set[str]:
    """Paths the exporter's kubelet client GETs (``self.get("/stats/summary")``)."""
    path = REPO_ROOT / "exporter" / "kubelet_client.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and node.args[0].value.startswith("/")
        ):
            found.add(node.args[0].value)
    return found


# The kubelet authorizes /stats/* as nodes/stats and every path without its own subresource
# (/pods among them) as nodes/proxy; through the API server's node proxy both are nodes/proxy.
KUBELET_PATH_PERMISSIONS = {
    "/stats/summary": permissions("", "nodes/stats", ["get"]),
    "/pods": permissions("", "nodes/proxy", ["get"]),
}
AUTH_CONFIGMAP = {"namespace": "kube-system", "name": "extension-apiserver-authentication"}


def kube_cache_permissions() -> set[Permission]:
    """What adapter/kube_cache.py's raw GETs need: list+watch of the watched kinds, list of
    the other resources the default rules map series to (listed on demand for `*` requests).
    Discovery (/api, /apis) is open to every authenticated user (system:discovery)."""
    source = (REPO_ROOT / "adapter" / "kube_cache.py").read_text(encoding="utf-8")
    watches = '("watch", "true")' in source
    needed: set[Permission] = set()
    watched: set[GroupResource] = set()
    for _name, path in WATCHED_PATHS:
        found = re.fullmatch(r"/api/v1/([a-z]+)", path)
        assert found, f"unexpected watched path {path}"
        watched.add(GroupResource("", found[1]))
        needed |= permissions("", found[1], ["list", "watch"] if watches else ["list"])
    assert watched == {PODS, NODES, NAMESPACES}
    for gr in resources_in_default_rules() - watched:
        needed |= permissions(gr.group, gr.resource, ["list"])
    return needed


def resources_in_default_rules() -> set[GroupResource]:
    config = compile_config(load_config_file(RULES_FILE), BuiltinResourceCatalog())
    resources: set[GroupResource] = set()
    for rule in (*config.rules, *config.external_rules):
        # A label template (<<.Resource>>) could name any resource: no finite RBAC for that.
        assert rule.association.template is None, f"{rule.location} maps labels by template"
        resources |= rule.association.labels_by_resource.keys()
    return resources


# Every Kubernetes call in the code, who makes it, and what it needs. A new call fails
# test_every_kubernetes_call_in_the_code_is_known until it is added here (and to the RBAC).
KNOWN_CALLS: dict[tuple[str, str], tuple[str, set[Permission]]] = {
    ("exporter/nodes.py", "list_node"): (
        "exporter --all-nodes",
        permissions("", "nodes", ["list"]),
    ),
    ("adapter/kube_auth_client.py", "create_token_review"): (
        "adapter",
        permissions("authentication.k8s.io", "tokenreviews", ["create"]),
    ),
    ("adapter/kube_auth_client.py", "create_subject_access_review"): (
        "adapter",
        permissions("authorization.k8s.io", "subjectaccessreviews", ["create"]),
    ),
    ("adapter/kube_auth_client.py", "read_namespaced_config_map"): (
        "adapter",
        permissions("", "configmaps", ["get"], **AUTH_CONFIGMAP),
    ),
    ("adapter/kube_cache.py", "call_api"): ("adapter", kube_cache_permissions()),
    # `kubemetrics-adapter explain --kubeconfig F` lists objects as whoever runs it, with their
    # own kubeconfig; no ServiceAccount of ours makes this call.
    ("adapter/explain.py", "call_api"): ("explain --kubeconfig", set()),
}

# Roles that Kubernetes creates itself, which the manifests bind to.
BUILTIN_ROLES: dict[tuple[str, str], set[Permission]] = {
    ("ClusterRole", "system:auth-delegator"): (
        permissions("authentication.k8s.io", "tokenreviews", ["create"])
        | permissions("authorization.k8s.io", "subjectaccessreviews", ["create"])
    ),
    ("Role", "extension-apiserver-authentication-reader"): permissions(
        "", "configmaps", ["get", "list", "watch"], **AUTH_CONFIGMAP
    ),
}
# Accepted beyond the calls: the built-in reader role also lists and watches its one ConfigMap.
BUILTIN_EXTRAS = permissions("", "configmaps", ["list", "watch"], **AUTH_CONFIGMAP)


def test_every_kubernetes_call_in_the_code_is_known() -> None:
    assert client_calls_in_code() == set(KNOWN_CALLS)
    assert kubelet_paths_in_code() == set(KUBELET_PATH_PERMISSIONS)


def rule_permissions(rules: Iterable[Obj], namespace: str) -> set[Permission]:
    granted = set()
    for rule in rules:
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    for name in rule.get("resourceNames") or [""]:
                        granted.add(Permission(group, resource, verb, namespace, name))
    return granted


def granted_to(objects: list[Obj], namespace: str, account: str) -> set[Permission]:
    roles = {(o["kind"], o["metadata"]["name"]): o.get("rules", []) for o in objects}
    granted: set[Permission] = set()
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
        if subject not in binding["subjects"]:
            continue
        scope = binding["metadata"].get("namespace", "") if binding["kind"] == "RoleBinding" else ""
        ref = (binding["roleRef"]["kind"], binding["roleRef"]["name"])
        if ref in BUILTIN_ROLES:
            granted |= {
                Permission(p.group, p.resource, p.verb, scope or p.namespace, p.name)
                for p in BUILTIN_ROLES[ref]
            }
        else:
            assert ref in roles, f"{binding['metadata']['name']} binds {ref}, which is not rendered"
            granted |= rule_permissions(roles[ref], scope)
    return granted


def needed_by(users: set[str]) -> set[Permission]:
    needed: set[Permission] = set()
    for user, needs in KNOWN_CALLS.values():
        if user in users:
            needed |= needs
    return needed


def exporter_users(objects: list[Obj]) -> tuple[set[str], set[Permission]]:
    ((_, container),) = (
        (w, c) for w, c in containers(objects) if c["command"] == ["kubemetrics-exporter"]
    )
    users = {"exporter"} | (
        {"exporter --all-nodes"} if "--all-nodes" in container["args"] else set()
    )
    kubelet = set().union(*KUBELET_PATH_PERMISSIONS.values())
    return users, kubelet


@pytest.mark.parametrize("overlay", INSTALLS)
@pytest.mark.parametrize("account", ["kubemetrics-adapter", "kubemetrics-exporter"])
def test_service_account_grants_are_exactly_its_calls(
    rendered: dict[str, list[Obj]], overlay: str, account: str
) -> None:
    objects = rendered[overlay]
    if account == "kubemetrics-adapter":
        needed = needed_by({"adapter"})
    else:
        users, kubelet = exporter_users(objects)
        needed = needed_by(users) | kubelet
    granted = granted_to(objects, "kubemetrics", account)
    missing = {n for n in needed if not any(n.covered_by(g) for g in granted)}
    assert sorted(missing) == [], f"{account} lacks permissions its code needs"
    extra = {g for g in granted if not any(n.covered_by(g) for n in needed)} - BUILTIN_EXTRAS
    assert sorted(extra) == [], f"{account} is granted more than its code calls"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_wildcard_or_unbound_roles(rendered: dict[str, list[Obj]], overlay: str) -> None:
    objects = rendered[overlay]
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding")
    }
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role.get("rules", []):
            for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: * in {key}"
        aggregated = any(
            k.startswith("rbac.authorization.k8s.io/aggregate-to-")
            for k in role["metadata"].get("labels", {})
        )
        assert aggregated or (role["kind"], role["metadata"]["name"]) in bound


def test_kubectl_top_access_is_aggregated_into_view_edit_admin(
    rendered: dict[str, list[Obj]],
) -> None:
    role = one(rendered["base"], "ClusterRole", "system:aggregated-metrics-reader")
    labels = role["metadata"]["labels"]
    for level in ("view", "edit", "admin"):
        assert labels[f"rbac.authorization.k8s.io/aggregate-to-{level}"] == "true"
    assert rule_permissions(role["rules"], "") == permissions(
        "metrics.k8s.io", "pods", ["get", "list", "watch"]
    ) | permissions("metrics.k8s.io", "nodes", ["get", "list", "watch"])


# --- flags, rules, examples ----------------------------------------------------------------------


@cache
def help_flags(program: str) -> frozenset[str]:
    executable = Path(sys.executable).parent / program
    result = subprocess.run(
        [str(executable), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"{program} --help failed: {result.stderr[-2000:]}"
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.stdout))


@pytest.mark.parametrize("overlay", INSTALLS)
def test_flags_in_the_manifests_exist_in_help(rendered: dict[str, list[Obj]], overlay: str) -> None:
    for workload, container in containers(rendered[overlay]):
        (program,) = container["command"]
        assert program in PROGRAMS
        flags = {arg.split("=", 1)[0] for arg in container["args"]}
        assert all(flag.startswith("--") for flag in flags), container["args"]
        unknown = sorted(flags - help_flags(program))
        assert unknown == [], f"{workload['metadata']['name']}: {program} has no {unknown}"


def test_rules_configmap_is_config_rules_yaml(rendered: dict[str, list[Obj]]) -> None:
    expected = RULES_FILE.read_text(encoding="utf-8")
    assert (DEPLOY / "base" / "rules.yaml").read_text(encoding="utf-8") == expected, (
        "deploy/base/rules.yaml must be a copy of config/rules.yaml: cp config/rules.yaml "
        "deploy/base/rules.yaml"
    )
    deployment = one(rendered["base"], "Deployment", "kubemetrics-adapter")
    pod_spec = deployment["spec"]["template"]["spec"]
    (volume,) = (v for v in pod_spec["volumes"] if v["name"] == "rules")
    config_map = one(rendered["base"], "ConfigMap", volume["configMap"]["name"])
    assert config_map["data"] == {"rules.yaml": expected}
    (mount,) = (m for m in pod_spec["containers"][0]["volumeMounts"] if m["name"] == "rules")
    assert f"--config={mount['mountPath']}/rules.yaml" in pod_spec["containers"][0]["args"]


def served_metrics(rules_path: Path, series: Mapping[str, frozenset[str]]) -> dict[str, set[str]]:
    """Metric names the rules serve from these series: {"pods": {...}, "external": {...}}."""
    config = compile_config(load_config_file(rules_path), BuiltinResourceCatalog())
    served: dict[str, set[str]] = {}
    for rule in (*config.rules, *config.external_rules):
        for name, labels in series.items():
            api_name = rule.api_name(name) if rule.accepts(name) else None
            if api_name is None:
                continue
            if rule.is_external:
                served.setdefault("external", set()).add(api_name)
            for gr, label in rule.association.labels_by_resource.items():
                if label in labels:
                    served.setdefault(gr.resource, set()).add(api_name)
    return served


def exported_series() -> dict[str, frozenset[str]]:
    from exporter.metrics import SCOPE_LABELS  # noqa: PLC0415

    return {
        row.name: frozenset(SCOPE_LABELS[row.scope]) | {label for label, _ in row.extra_labels}
        for row in METRICS
    }


def test_example_hpas_use_metrics_the_default_rules_serve(
    rendered: dict[str, list[Obj]],
) -> None:
    served = served_metrics(RULES_FILE, exported_series())
    types = set()
    for hpa in by_kind(rendered["examples"], "HorizontalPodAutoscaler"):
        for metric in hpa["spec"]["metrics"]:
            types.add(metric["type"])
            if metric["type"] == "Resource":
                assert metric["resource"]["name"] in ("cpu", "memory")
            elif metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in served["pods"]
            elif metric["type"] == "External":
                assert metric["external"]["metric"]["name"] in served["external"]
    assert types == {"Resource", "Pods", "External"}


def test_recorded_adapter_rules_only_swap_the_queries() -> None:
    recorded_path = DEPLOY / "prometheus" / "adapter-rules-recorded.yaml"
    recorded = yaml.safe_load(recorded_path.read_text(encoding="utf-8"))
    default = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    assert recorded["rules"] == default["rules"]
    assert recorded["resourceRules"]["window"] == default["resourceRules"]["window"]
    # The external metric keeps its name when read from the recorded series.
    recording = yaml.safe_load((DEPLOY / "prometheus" / "recording-rules.yaml").read_text())
    records = {
        r["record"]: frozenset({"node", "namespace", "pod", "container"})
        for group in recording["groups"]
        for r in group["rules"]
    }
    assert (
        served_metrics(recorded_path, records)["external"]
        == (served_metrics(RULES_FILE, exported_series())["external"])
    )
    text = recorded_path.read_text(encoding="utf-8")
    used = set(re.findall(r"\b[a-z_]+:kubestats_[a-z_]+:[a-z0-9_]+\b", text))
    assert used, "the recorded rules should read recorded series"
    assert used <= records.keys()


# --- Prometheus ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "recording-rules.yaml"],
        ["test", "rules", "recording-rules.test.yaml"],
    ],
    ids=["check-config", "check-rules", "test-rules"],
)
def test_promtool(promtool: str, args: list[str]) -> None:
    result = subprocess.run(
        [promtool, *args],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_scrape_config_keeps_the_exporter_labels() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = (j for j in config["scrape_configs"] if j["job_name"] == "kubemetrics-exporter")
    assert job["honor_labels"] is True
    assert job["scrape_interval"] == "15s"  # the default rules' 1m windows assume it


# --- image ---------------------------------------------------------------------------------------


def test_dockerfile_builds_from_repository_files_and_runs_as_the_manifests_user() -> None:
    lines = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    copies = [
        line.split()[1:-1] for line in lines if line.startswith("COPY ") and "--from" not in line
    ]
    sources = [source for sources in copies for source in sources]
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    assert f"USER {NON_ROOT_USER}:{NON_ROOT_USER}" in final_stage
    # A prometheus-adapter Deployment runs unchanged: its args either start with /adapter (Helm
    # chart) or are flags only (kube-prometheus), for an image whose entrypoint is the adapter.
    assert 'ENTRYPOINT ["kubemetrics-adapter"]' in final_stage
    assert any("ln -s" in line and line.rstrip().endswith(" /adapter") for line in final_stage)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for program in PROGRAMS:
        assert re.search(rf"^{program} = ", pyproject, re.MULTILINE), program
