"""Kubelet JSON payloads for a simulated node: ``/stats/summary`` and ``/pods``. Pure, no IO.

The shapes follow the kubelet's stats/v1alpha1 types and the real captures in
tests/fixtures/kubelet/ (same keys, nesting, integer fields, RFC3339 second-precision times).
Everything is computed at the node's housekeeping instant (``Cluster.sample_time``), so two
requests within one housekeeping interval get identical payloads, as from a real kubelet.

Derived numbers that are not part of the model's truth (filesystem, network, PSI, page faults)
are simple deterministic functions of it, chosen to keep the kubelet's invariants: counters only
grow between restarts, ``workingSetBytes <= usageBytes``, ``availableBytes = limit - workingSet``.

Windows nodes (``Node.os == "windows"``) get Windows-shaped stats: no ``usageNanoCores``, no
``swap``/``io``/``psi``, no inode fields, zero ``rssBytes``/page faults, an unnamed interface
without error counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from simcluster.model import (
    GIB,
    KUBELET_CPU_CORES,
    KUBELET_MEMORY_BYTES,
    MIB,
    OS_MEMORY_BYTES,
    PAUSE_MEMORY_BYTES,
    RESERVED_MEMORY_BYTES,
    RUNTIME_CPU_CORES,
    RUNTIME_MEMORY_BYTES,
    Cluster,
    ContainerState,
    Node,
    Pod,
    Resources,
    stable_fraction,
    stable_uid,
)

JSON = dict[str, Any]
FreshContainerCpu = Literal["full", "no_rate", "absent"]

NETWORK_BYTES_PER_CORE_SECOND = 2_000_000.0
IDLE_NETWORK_BYTES_PER_SECOND = 200.0
NODE_NETWORK_BYTES_PER_SECOND = 40_000.0
LOG_ROTATE_BYTES = 10 * MIB
NODE_FS_BASE_USED_BYTES = 18 * GIB
NODE_FS_INODES = 6_553_600
IMAGE_FS_USED_BYTES = 6 * GIB


@dataclass(frozen=True, slots=True)
class PayloadOptions:
    """Knobs for fields that real kubelets sometimes leave out.

    ``fresh_container_cpu``: what a container (or pod) younger than one housekeeping interval
    reports for CPU: ``"full"`` everything, ``"no_rate"`` no ``usageNanoCores`` (CRI stats before
    the second sample), ``"absent"`` no ``cpu`` block at all (metrics-server issue #908).
    """

    fresh_container_cpu: FreshContainerCpu = "full"


def rfc3339(t: float) -> str:
    """metav1.Time: RFC3339 in UTC with whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t)))


def go_float(value: float) -> float | int:
    """A PSI percentage as Go's encoding/json prints it: two decimals, no ``.0`` when whole."""
    rounded = round(value, 2)
    return int(rounded) if rounded == int(rounded) else rounded


def summary(
    cluster: Cluster, node_name: str, now: float, options: PayloadOptions | None = None
) -> JSON:
    """The ``/stats/summary`` body the node's kubelet serves at wall time ``now``."""
    return _SummaryBuilder(cluster, node_name, now, options or PayloadOptions()).build()


def only_cpu_and_memory(full: JSON) -> JSON:
    """The ``?only_cpu_and_memory=true`` variant: node and pods keep only CPU and memory."""

    def keep(block: JSON, keys: tuple[str, ...]) -> JSON:
        return {key: block[key] for key in keys if key in block}

    node = full["node"]
    reduced_node = keep(node, ("nodeName", "startTime", "cpu", "memory"))
    reduced_node["systemContainers"] = [
        keep(c, ("name", "startTime", "cpu", "memory")) for c in node.get("systemContainers", [])
    ]
    pods = []
    for pod in full["pods"]:
        reduced = keep(pod, ("podRef", "startTime", "cpu", "memory"))
        reduced["containers"] = [
            keep(c, ("name", "startTime", "cpu", "memory")) for c in pod["containers"]
        ]
        pods.append(reduced)
    return {"node": reduced_node, "pods": pods}


class _SummaryBuilder:
    """One summary computation; a class only to share the sample's constants between parts."""

    def __init__(self, cluster: Cluster, node_name: str, now: float, options: PayloadOptions):
        self.cluster = cluster
        self.node: Node = cluster.node(node_name)
        self.options = options
        self.sample = cluster.sample_time(node_name, now)
        self.ts = rfc3339(self.sample)
        self.windows = self.node.os == "windows"
        # Blocks whose availableBytes/inodesFree are the node filesystem's, filled in at the end
        # because the node's usage is only known once every pod has been counted.
        self.node_fs_blocks: list[JSON] = []
        self.ephemeral_used = 0
        self.ephemeral_inodes = 0
        self.pod_ephemeral = 0
        self.pod_ephemeral_inodes = 0

    # -- helpers ---------------------------------------------------------------------------

    def psi(self, total_us: int, pressure: float) -> JSON:
        if pressure == 0.0:  # the common case, and the hot path of big payloads
            return {
                "full": {"total": total_us * 9 // 10, "avg10": 0, "avg60": 0, "avg300": 0},
                "some": {"total": total_us, "avg10": 0, "avg60": 0, "avg300": 0},
            }
        some = {
            "total": total_us,
            "avg10": go_float(pressure),
            "avg60": go_float(pressure * 0.8),
            "avg300": go_float(pressure * 0.5),
        }
        full = {
            "total": total_us * 9 // 10,
            "avg10": go_float(pressure * 0.9),
            "avg60": go_float(pressure * 0.7),
            "avg300": go_float(pressure * 0.45),
        }
        return {"full": full, "some": some}

    def cpu(self, core_seconds: float, cores: float | None, level: float) -> JSON:
        block: JSON = {"time": self.ts}
        if cores is not None and not self.windows:
            block["usageNanoCores"] = int(cores * 1e9)
        block["usageCoreNanoSeconds"] = int(core_seconds * 1e9)
        if not self.windows:
            pressure = min(99.0, max(0.0, (level - 1.0) * 30.0))
            block["psi"] = self.psi(int(core_seconds * 2e4), pressure)
        return block

    def memory(
        self, working_set: int, usage: int, limit: int | None, page_faults: int, rss: int
    ) -> JSON:
        block: JSON = {"time": self.ts}
        if limit is not None:
            block["availableBytes"] = max(limit - working_set, 0)
        if self.windows:
            block.update(
                usageBytes=usage,
                workingSetBytes=working_set,
                rssBytes=0,
                pageFaults=0,
                majorPageFaults=0,
            )
            return block
        block.update(
            usageBytes=usage,
            workingSetBytes=working_set,
            rssBytes=rss,
            pageFaults=page_faults,
            majorPageFaults=0,
        )
        block["psi"] = self.psi(0, 0.0)
        return block

    def io(self, core_seconds: float) -> JSON:
        return {"time": self.ts, "psi": self.psi(int(core_seconds * 100), 0.0)}

    def node_fs(self, used: int, inodes_used: int, ts: str | None = None) -> JSON:
        block: JSON = {
            "time": ts or self.ts,
            "availableBytes": 0,
            "capacityBytes": self.node.fs_capacity_bytes,
            "usedBytes": used,
        }
        if not self.windows:
            block.update(inodesFree=0, inodes=NODE_FS_INODES, inodesUsed=inodes_used)
        self.node_fs_blocks.append(block)
        return block

    def own_fs(self, capacity: int, used: int, inodes: int, inodes_used: int) -> JSON:
        block: JSON = {
            "time": self.ts,
            "availableBytes": capacity - used,
            "capacityBytes": capacity,
            "usedBytes": used,
        }
        if not self.windows:
            block.update(inodesFree=inodes - inodes_used, inodes=inodes, inodesUsed=inodes_used)
        return block

    def network(self, rx: int, tx: int) -> JSON:
        if self.windows:
            interface: JSON = {"name": "", "rxBytes": rx, "txBytes": tx}
            return {"time": self.ts, **interface, "interfaces": [interface]}
        interface = {"name": "eth0", "rxBytes": rx, "rxErrors": 0, "txBytes": tx, "txErrors": 0}
        tunnel = {"name": "tunl0", "rxBytes": 0, "rxErrors": 0, "txBytes": 0, "txErrors": 0}
        return {"time": self.ts, **interface, "interfaces": [tunnel, interface]}

    def fresh(self, started: float) -> bool:
        return self.sample - started < self.cluster.housekeeping_interval

    def maybe_cpu(self, block: JSON, started: float, cpu: JSON) -> None:
        if not self.fresh(started) or self.options.fresh_container_cpu == "full":
            block["cpu"] = cpu
        elif self.options.fresh_container_cpu == "no_rate":
            cpu.pop("usageNanoCores", None)
            block["cpu"] = cpu

    # -- containers and pods -----------------------------------------------------------------

    def container(self, pod: Pod, state: ContainerState) -> tuple[JSON, int, int, int]:
        """The container block, plus its (usage, rss, page faults) for the pod totals."""
        template = state.template
        age = self.sample - state.started
        ws = state.working_set_bytes
        usage = ws + ws // 50 + 65_536
        rss = ws * 93 // 100
        # Page faults are cumulative: they only depend on the instance's age.
        faults = template.memory_bytes // 8192 + int(age * 3)
        block: JSON = {"name": template.name, "startTime": rfc3339(state.started)}
        self.maybe_cpu(
            block, state.started, self.cpu(state.cpu_core_seconds, state.cpu_cores, state.level)
        )
        block["memory"] = self.memory(ws, usage, template.resources.memory_limit_bytes, faults, rss)
        if not self.windows:
            block["io"] = self.io(state.cpu_core_seconds)
        jitter = stable_fraction(pod.uid, template.name)
        rootfs_used = 28_672 + 4096 * int(jitter * 64)
        logs_used = int((20.0 + 80.0 * jitter) * age) % LOG_ROTATE_BYTES
        block["rootfs"] = self.node_fs(rootfs_used, 8)
        block["logs"] = self.node_fs(logs_used, 1)
        if not self.windows:
            block["swap"] = {"time": self.ts, "swapAvailableBytes": 0, "swapUsageBytes": 0}
        self.pod_ephemeral += rootfs_used + logs_used
        self.pod_ephemeral_inodes += 9
        return block, usage, rss, faults

    def volumes(self, pod: Pod) -> list[JSON]:
        age = self.sample - pod.created
        blocks = []
        block: JSON
        for volume in pod.volumes:
            used = int(volume.used_bytes + volume.growth_bytes_per_second * max(age, 0.0))
            if volume.kind == "emptyDir":
                used = min(used, 1 * GIB)
                block = self.node_fs(used, 3 + used // (1 * MIB))
                self.pod_ephemeral += used
                self.pod_ephemeral_inodes += 3 + used // (1 * MIB)
            elif volume.kind == "pvc":
                used = min(used, volume.capacity_bytes * 95 // 100)
                inodes = volume.capacity_bytes // 16_384
                block = self.own_fs(volume.capacity_bytes, used, inodes, 11 + used // (256 * 1024))
            else:
                block = self.own_fs(volume.capacity_bytes, used, 1_003_038, 9)
            block["name"] = volume.name
            if volume.kind == "pvc" and volume.claim_name is not None:
                block["pvcRef"] = {"name": volume.claim_name, "namespace": pod.namespace}
            blocks.append(block)
        return blocks

    def pod(self, pod: Pod) -> tuple[JSON, int]:
        """The pod block and its memory working set (for the node totals)."""
        cluster, sample = self.cluster, self.sample
        self.pod_ephemeral = 0
        self.pod_ephemeral_inodes = 0
        containers = []
        ws_total = usage_total = rss_total = faults_total = 0
        processes = 0
        level = 1.0
        for template in pod.containers:
            state = cluster.container_state(pod, template, sample)
            container, usage, rss, faults = self.container(pod, state)
            containers.append(container)
            ws_total += state.working_set_bytes
            usage_total += usage
            rss_total += rss
            faults_total += faults
            level = max(level, state.level)
            processes += 1 + int(stable_fraction(pod.uid, template.name, "procs") * 3)
        ws = ws_total + PAUSE_MEMORY_BYTES
        core_seconds = cluster.pod_cpu_core_seconds(pod, sample)
        since = max(sample - cluster.housekeeping_interval, pod.created)
        window = sample - since
        cores = (
            (core_seconds - cluster.pod_cpu_core_seconds(pod, since)) / window
            if window > 0
            else 0.0
        )
        limits = [c.resources.memory_limit_bytes for c in pod.containers]
        pod_limit = None if None in limits else sum(x for x in limits if x is not None)
        age = sample - pod.created
        rx = int(core_seconds * NETWORK_BYTES_PER_CORE_SECOND + IDLE_NETWORK_BYTES_PER_SECOND * age)
        block: JSON = {
            "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "startTime": rfc3339(pod.created),
            "containers": containers,
        }
        self.maybe_cpu(block, pod.created, self.cpu(core_seconds, cores, level))
        block["memory"] = self.memory(
            ws,
            usage_total + PAUSE_MEMORY_BYTES,
            pod_limit,
            # The pod cgroup's count survives container restarts, unlike the containers'.
            900
            + sum(c.memory_bytes // 8192 for c in pod.containers)
            + int((sample - pod.created) * 3 * len(pod.containers)),
            rss_total + PAUSE_MEMORY_BYTES,
        )
        if not self.windows:
            block["io"] = self.io(core_seconds)
        block["network"] = self.network(rx, rx * 3 // 5)
        volumes = self.volumes(pod)
        if volumes:
            block["volume"] = volumes
        block["ephemeral-storage"] = self.node_fs(self.pod_ephemeral, self.pod_ephemeral_inodes)
        self.ephemeral_used += self.pod_ephemeral
        self.ephemeral_inodes += self.pod_ephemeral_inodes
        block["process_stats"] = {"process_count": processes}
        if not self.windows:
            block["swap"] = {"time": self.ts, "swapUsageBytes": 0}
        return block, ws

    # -- node ----------------------------------------------------------------------------------

    def system_container(
        self,
        *,
        name: str,
        started: float,
        core_seconds: float,
        cores: float,
        ws: int,
        limit: int | None,
    ) -> JSON:
        block: JSON = {"name": name, "startTime": rfc3339(started)}
        block["cpu"] = self.cpu(core_seconds, cores, 1.0)
        usage = ws + ws // 20
        block["memory"] = self.memory(
            ws, usage, limit, ws // 4096 + int(core_seconds * 10), ws * 9 // 10
        )
        if not self.windows:
            block["io"] = self.io(core_seconds)
            block["swap"] = {"time": self.ts, "swapUsageBytes": 0}
        return block

    def build(self) -> JSON:
        cluster, node, sample = self.cluster, self.node, self.sample
        pods = []
        pods_ws = 0
        for pod in cluster.pods_on_node(node.name, sample):
            block, ws = self.pod(pod)
            pods.append(block)
            pods_ws += ws
        interval = cluster.housekeeping_interval
        started = cluster.node_started(node)
        uptime = sample - started
        pods_cpu = cluster.node_pods_cpu_core_seconds(node.name, sample)
        pods_cores = (
            pods_cpu - cluster.node_pods_cpu_core_seconds(node.name, sample - interval)
        ) / interval
        system_cpu = cluster.node_system_cpu_core_seconds(node.name, sample)
        system_cores = system_cpu / uptime if uptime > 0 else 0.0
        node_ws = KUBELET_MEMORY_BYTES + RUNTIME_MEMORY_BYTES + OS_MEMORY_BYTES + pods_ws
        page_cache = min(node.memory_bytes // 8, 2 * GIB)
        kubelet = self.system_container(
            name="kubelet",
            started=started + 4,
            core_seconds=KUBELET_CPU_CORES * uptime,
            cores=KUBELET_CPU_CORES,
            ws=KUBELET_MEMORY_BYTES,
            limit=None,
        )
        runtime = self.system_container(
            name="runtime",
            started=started + 2,
            core_seconds=RUNTIME_CPU_CORES * uptime,
            cores=RUNTIME_CPU_CORES,
            ws=RUNTIME_MEMORY_BYTES,
            limit=None,
        )
        pods_cgroup = self.system_container(
            name="pods",
            started=started,
            core_seconds=pods_cpu,
            cores=pods_cores,
            ws=pods_ws,
            limit=node.memory_bytes - RESERVED_MEMORY_BYTES,
        )
        system = [kubelet, runtime, pods_cgroup]
        slot_ages = sum(sample - (cluster.epoch + s.active_from) for s in cluster.slots(node.name))
        rx = int(
            NODE_NETWORK_BYTES_PER_SECOND * uptime
            + NETWORK_BYTES_PER_CORE_SECOND * pods_cpu
            + IDLE_NETWORK_BYTES_PER_SECOND * slot_ages
        )
        fs_used = NODE_FS_BASE_USED_BYTES + self.ephemeral_used
        fs_inodes_used = 1_200_000 + self.ephemeral_inodes
        node_block: JSON = {
            "nodeName": node.name,
            "systemContainers": system,
            "startTime": rfc3339(started),
            "cpu": self.cpu(pods_cpu + system_cpu, pods_cores + system_cores, 1.0),
            "memory": self.memory(
                node_ws,
                node_ws + page_cache,
                node.memory_bytes,
                int(uptime * 40),
                node_ws * 4 // 5,
            ),
        }
        if not self.windows:
            node_block["io"] = self.io(pods_cpu + system_cpu)
        node_block["network"] = self.network(rx, rx * 2 // 5)
        node_block["fs"] = self.node_fs(fs_used, fs_inodes_used)
        images = self.own_fs(
            self.node.fs_capacity_bytes, IMAGE_FS_USED_BYTES, NODE_FS_INODES, 45_000
        )
        node_block["runtime"] = {"imageFs": images, "containerFs": dict(images)}
        self.node_fs_blocks.extend((images, node_block["runtime"]["containerFs"]))
        if not self.windows:
            processes = sum(p["process_stats"]["process_count"] for p in pods)
            node_block["rlimit"] = {
                "time": self.ts,
                "maxpid": 4_194_304,
                "curproc": 400 + processes,
            }
            node_block["swap"] = {"time": self.ts, "swapAvailableBytes": 0, "swapUsageBytes": 0}
        available = node.fs_capacity_bytes - fs_used - IMAGE_FS_USED_BYTES
        inodes_free = NODE_FS_INODES - fs_inodes_used - 45_000
        for block in self.node_fs_blocks:
            block["availableBytes"] = max(available, 0)
            if "inodes" in block:
                block["inodesFree"] = max(inodes_free, 0)
        return {"node": node_block, "pods": pods}


# -- /pods ---------------------------------------------------------------------------------------


def cpu_quantity(millicores: int) -> str:
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory_quantity(size: int) -> str:
    for suffix, unit in (("Gi", GIB), ("Mi", MIB), ("Ki", 1024)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def _resources(resources: Resources) -> JSON:
    requests: JSON = {}
    limits: JSON = {}
    if resources.cpu_request_millicores is not None:
        requests["cpu"] = cpu_quantity(resources.cpu_request_millicores)
    if resources.memory_request_bytes is not None:
        requests["memory"] = memory_quantity(resources.memory_request_bytes)
    if resources.cpu_limit_millicores is not None:
        limits["cpu"] = cpu_quantity(resources.cpu_limit_millicores)
    if resources.memory_limit_bytes is not None:
        limits["memory"] = memory_quantity(resources.memory_limit_bytes)
    block: JSON = {}
    if limits:
        block["limits"] = limits
    if requests:
        block["requests"] = requests
    return block


def _effective_requests(resources: Resources) -> Resources:
    """The API server defaults a missing request to the limit."""
    return Resources(
        cpu_request_millicores=resources.cpu_request_millicores
        if resources.cpu_request_millicores is not None
        else resources.cpu_limit_millicores,
        cpu_limit_millicores=resources.cpu_limit_millicores,
        memory_request_bytes=resources.memory_request_bytes
        if resources.memory_request_bytes is not None
        else resources.memory_limit_bytes,
        memory_limit_bytes=resources.memory_limit_bytes,
    )


def qos_class(all_resources: list[Resources]) -> str:
    if all(r == Resources() for r in all_resources):
        return "BestEffort"
    guaranteed = all(
        r.cpu_limit_millicores is not None
        and r.memory_limit_bytes is not None
        and r.cpu_request_millicores == r.cpu_limit_millicores
        and r.memory_request_bytes == r.memory_limit_bytes
        for r in all_resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _container_id(*parts: object) -> str:
    return "containerd://" + stable_uid(*parts).replace("-", "") * 2


def pod_list(cluster: Cluster, node_name: str, now: float) -> JSON:
    """The ``/pods`` body (a v1 PodList) the node's kubelet serves at wall time ``now``."""
    node = cluster.node(node_name)
    sample = cluster.sample_time(node_name, now)
    items = [
        _pod_item(cluster, node, pod, sample) for pod in cluster.pods_on_node(node_name, sample)
    ]
    return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}


def _pod_item(cluster: Cluster, node: Node, pod: Pod, sample: float) -> JSON:
    created = rfc3339(pod.created)
    mounts: list[JSON] = [
        {"name": v.name, "mountPath": f"/mnt/{v.name}"}
        for v in pod.volumes
        if v.kind != "projected"
    ]
    mounts += [
        {
            "name": v.name,
            "readOnly": True,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        }
        for v in pod.volumes
        if v.kind == "projected"
    ]
    containers = []
    statuses = []
    effective = [_effective_requests(c.resources) for c in pod.containers]
    last_ready = pod.created
    for template, resources in zip(pod.containers, effective, strict=True):
        state = cluster.container_state(pod, template, sample)
        last_ready = max(last_ready, state.started)
        containers.append(
            {
                "name": template.name,
                "image": template.image,
                "resources": _resources(template.resources),
                "volumeMounts": mounts,
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
        )
        last_state: JSON = {}
        if state.restart_count:
            previous_start = (
                pod.created
                if state.restart_count == 1
                else template.restarts.restart_time(pod.created, state.restart_count - 1)
                if template.restarts
                else pod.created
            )
            last_state = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "Error",
                    "startedAt": rfc3339(previous_start),
                    "finishedAt": rfc3339(state.started),
                    "containerID": _container_id(pod.uid, template.name, state.restart_count - 1),
                }
            }
        status: JSON = {
            "name": template.name,
            "state": {"running": {"startedAt": rfc3339(state.started)}},
            "lastState": last_state,
            "ready": True,
            "restartCount": state.restart_count,
            "image": template.image,
            "imageID": template.image.split(":")[0]
            + "@sha256:"
            + stable_uid(template.image).replace("-", "") * 2,
            "containerID": _container_id(pod.uid, template.name, state.restart_count),
            "started": True,
        }
        requests = _resources(resources).get("requests")
        if requests:
            status["allocatedResources"] = requests
        status["resources"] = _resources(resources)
        statuses.append(status)
    volumes: list[JSON] = []
    for volume in pod.volumes:
        if volume.kind == "pvc":
            volumes.append(
                {"name": volume.name, "persistentVolumeClaim": {"claimName": volume.claim_name}}
            )
        elif volume.kind == "emptyDir":
            volumes.append({"name": volume.name, "emptyDir": {}})
        else:
            volumes.append(_projected_volume(volume.name))
    ready_at = rfc3339(last_ready)
    deployment = pod.slot.deployment
    return {
        "metadata": {
            "name": pod.name,
            "generateName": f"{pod.replicaset}-",
            "namespace": pod.namespace,
            "uid": pod.uid,
            "resourceVersion": str(int(pod.created - cluster.epoch + 10**7)),
            "creationTimestamp": created,
            "labels": dict(pod.labels),
            "annotations": {
                "kubernetes.io/config.seen": created.replace("Z", ".000000000Z"),
                "kubernetes.io/config.source": "api",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": pod.replicaset,
                    "uid": stable_uid("replicaset", deployment.namespace, deployment.name),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "volumes": volumes,
            "containers": containers,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": node.name,
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
                for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                _condition("PodReadyToStartContainers", created),
                _condition("Initialized", created),
                _condition("Ready", ready_at),
                _condition("ContainersReady", ready_at),
                _condition("PodScheduled", created),
            ],
            "hostIP": node.internal_ip,
            "hostIPs": [{"ip": node.internal_ip}],
            "podIP": pod.pod_ip,
            "podIPs": [{"ip": pod.pod_ip}],
            "startTime": created,
            "containerStatuses": statuses,
            "qosClass": qos_class(effective),
        },
    }


def _condition(kind: str, at: str) -> JSON:
    return {"type": kind, "status": "True", "lastProbeTime": None, "lastTransitionTime": at}


def _projected_volume(name: str) -> JSON:
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
            "defaultMode": 420,
        },
    }
