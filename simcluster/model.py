"""The simulated cluster: nodes, namespaces, deployments, pods and containers, and its truth.

A :class:`Cluster` is immutable. Pods are not stored: the pods alive at a moment are computed from
the deployments' replica *slots* (a slot is one replica position, pinned to one node; with churn it
holds a new pod every ``Churn.every`` seconds). Every number is a pure function of the cluster and
a time, so the payload builder, the stand-in kubelets and end-to-end tests all agree on one truth.

Public times are Unix seconds (floats, like ``time.time()``). Internally behaviours see seconds
relative to the cluster's ``epoch``, which keeps float counters precise.

Exception tree::

    ModelError(ValueError)          the cluster description is invalid (all problems listed)
    UnknownObjectError(LookupError) no node / pod / container with that name at that time
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from simcluster.behaviour import Churn, Profile, Ramp, Restarts, Spike, Steady, sample_time, warm_up

GIB = 1024**3
MIB = 1024**2
# Sandbox (pause) container memory that pod cgroups hold on top of their containers.
PAUSE_MEMORY_BYTES = 258_048
# Node-level load that is not in any pod: kubelet, container runtime, the OS.
KUBELET_CPU_CORES = 0.04
RUNTIME_CPU_CORES = 0.03
OS_CPU_CORES = 0.08
KUBELET_MEMORY_BYTES = 62 * MIB
RUNTIME_MEMORY_BYTES = 96 * MIB
OS_MEMORY_BYTES = 540 * MIB
# Kubelet + system reservations: what the "pods" system container may use at most.
RESERVED_MEMORY_BYTES = 1 * GIB

OperatingSystem = Literal["linux", "windows"]
VolumeKind = Literal["pvc", "emptyDir", "projected"]


class ModelError(ValueError):
    """The cluster description is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid simulated cluster: " + "; ".join(problems))
        self.problems = tuple(problems)


class UnknownObjectError(LookupError):
    """No node, pod or container with that name exists (at that time)."""


@dataclass(frozen=True, slots=True)
class Resources:
    """A container's requests and limits; ``None`` means not set in the pod spec."""

    cpu_request_millicores: int | None = None
    cpu_limit_millicores: int | None = None
    memory_request_bytes: int | None = None
    memory_limit_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerTemplate:
    """One container of a deployment's pod template and how it behaves."""

    name: str
    image: str
    cpu_cores: float  # base CPU rate at load level 1
    memory_bytes: int  # steady working set at load level 1
    resources: Resources = field(default_factory=Resources)
    profile: Profile = field(default_factory=Steady)
    memory_follows_load: float = 0.3  # fraction by which the working set scales with load
    restarts: Restarts | None = None


@dataclass(frozen=True, slots=True)
class VolumeTemplate:
    """A pod volume the kubelet reports stats for."""

    name: str
    kind: VolumeKind
    capacity_bytes: int
    used_bytes: int  # when the pod is created
    growth_bytes_per_second: float = 0.0
    claim_name: str | None = None  # the PVC name, for kind "pvc"


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployment; its replicas are spread round-robin over the nodes."""

    namespace: str
    name: str
    replicas: int
    containers: tuple[ContainerTemplate, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[VolumeTemplate, ...] = ()
    churn: Churn | None = None
    # How long the (non-churning) pods have been running at the epoch; spread per replica.
    age_seconds: float = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    cpu_cores: int
    memory_bytes: int
    internal_ip: str
    os: OperatingSystem = "linux"
    labels: Mapping[str, str] = field(default_factory=dict)
    age_seconds: float = 7 * 86400.0  # uptime at the epoch
    sample_offset: int = 0  # seconds; staggers housekeeping instants between nodes
    fs_capacity_bytes: int = 100 * GIB


@dataclass(frozen=True, slots=True)
class Slot:
    """One replica position of a deployment, pinned to a node."""

    deployment: Deployment
    index: int
    node: Node
    pod_ip: str
    offset: float  # relative seconds: churn stagger, or (minus) pod age without churn
    active_from: float  # relative seconds since this slot has held a pod


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod alive at some time. ``created`` is Unix seconds."""

    namespace: str
    name: str
    uid: str
    node_name: str
    replicaset: str
    labels: Mapping[str, str]
    created: float
    pod_ip: str
    slot: Slot
    generation: int

    @property
    def containers(self) -> tuple[ContainerTemplate, ...]:
        return self.slot.deployment.containers

    @property
    def volumes(self) -> tuple[VolumeTemplate, ...]:
        return self.slot.deployment.volumes


@dataclass(frozen=True, slots=True)
class ContainerState:
    """A container instance at a time: when it (re)started and its usage then."""

    template: ContainerTemplate
    started: float  # Unix seconds of the current instance's start
    restart_count: int
    cpu_core_seconds: float  # cumulative since ``started``; resets on restart
    cpu_cores: float  # average rate over the housekeeping interval before the time
    level: float
    working_set_bytes: int


def stable_token(*parts: object, length: int = 5) -> str:
    """A deterministic Kubernetes-style random suffix (same alphabet as the API server)."""
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=16).digest()
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def stable_uid(*parts: object) -> str:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def stable_fraction(*parts: object) -> float:
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Cluster:
    """An immutable simulated cluster; every query is a pure function of a time."""

    def __init__(
        self,
        nodes: Sequence[Node],
        deployments: Sequence[Deployment],
        *,
        epoch: int,
        seed: int = 0,
        housekeeping_interval: int = 10,
    ) -> None:
        problems = _check(nodes, deployments, housekeeping_interval)
        if problems:
            raise ModelError(problems)
        self.nodes = tuple(nodes)
        self.deployments = tuple(deployments)
        self.epoch = epoch
        self.seed = seed
        self.housekeeping_interval = housekeeping_interval
        self._nodes_by_name = {node.name: node for node in self.nodes}
        self._slots_by_node: dict[str, list[Slot]] = {node.name: [] for node in self.nodes}
        self._replicaset = {
            (d.namespace, d.name): f"{d.name}-{stable_token(seed, d.namespace, d.name, length=10)}"
            for d in self.deployments
        }
        position = 0
        for deployment in self.deployments:
            for index in range(deployment.replicas):
                node = self.nodes[position % len(self.nodes)]
                node_index = position % len(self.nodes)
                local = len(self._slots_by_node[node.name])
                self._slots_by_node[node.name].append(
                    _make_slot(
                        seed=seed,
                        deployment=deployment,
                        index=index,
                        node=node,
                        node_index=node_index,
                        local=local,
                    )
                )
                position += 1

    # -- structure ---------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        try:
            return self._nodes_by_name[name]
        except KeyError:
            raise UnknownObjectError(f"no node named {name!r} in the simulated cluster") from None

    def node_started(self, node: Node) -> float:
        return self.epoch - node.age_seconds

    def sample_time(self, node_name: str, t: float) -> float:
        """The housekeeping instant whose stats a kubelet serves at wall time ``t``."""
        node = self.node(node_name)
        return self.epoch + sample_time(
            t - self.epoch, self.housekeeping_interval, node.sample_offset
        )

    def slots(self, node_name: str) -> tuple[Slot, ...]:
        self.node(node_name)
        return tuple(self._slots_by_node[node_name])

    def pods_on_node(self, node_name: str, t: float) -> list[Pod]:
        """Pods on a node at ``t``, in a stable order (slot order)."""
        rel = t - self.epoch
        return [self._pod_in_slot(slot, rel) for slot in self.slots(node_name)]

    def pods(self, t: float) -> list[Pod]:
        return [pod for node in self.nodes for pod in self.pods_on_node(node.name, t)]

    def pod(self, namespace: str, name: str, t: float) -> Pod:
        for pod in self.pods(t):
            if pod.namespace == namespace and pod.name == name:
                return pod
        raise UnknownObjectError(f"no pod {namespace}/{name} alive at {t}")

    def _pod_in_slot(self, slot: Slot, rel: float) -> Pod:
        deployment = slot.deployment
        if deployment.churn is None:
            generation = 0
            created = slot.offset
        else:
            generation = deployment.churn.generation(rel - slot.offset)
            created = deployment.churn.created(generation) + slot.offset
        replicaset = self._replicaset[(deployment.namespace, deployment.name)]
        key = (self.seed, deployment.namespace, deployment.name, slot.index, generation)
        labels = dict(deployment.labels)
        labels["pod-template-hash"] = replicaset.rsplit("-", 1)[1]
        return Pod(
            namespace=deployment.namespace,
            name=f"{replicaset}-{stable_token(*key)}",
            uid=stable_uid("pod", *key),
            node_name=slot.node.name,
            replicaset=replicaset,
            labels=labels,
            created=self.epoch + created,
            pod_ip=slot.pod_ip,
            slot=slot,
            generation=generation,
        )

    # -- per-container truth -----------------------------------------------------------------

    def container_state(
        self, pod: Pod, container: str | ContainerTemplate, t: float
    ) -> ContainerState:
        """The container instance alive at ``t`` and its usage at exactly ``t``."""
        template = self._template(pod, container)
        rel = t - self.epoch
        created = pod.created - self.epoch
        restarts = template.restarts.count(created, rel) if template.restarts else 0
        started = (
            template.restarts.restart_time(created, restarts)
            if template.restarts and restarts
            else created
        )
        profile = template.profile
        since = max(rel - self.housekeeping_interval, started)
        window = rel - since
        cpu_cores = (
            template.cpu_cores * profile.integral(since, rel) / window
            if window > 0
            else template.cpu_cores * profile.level(rel)
        )
        level = profile.level(rel)
        return ContainerState(
            template=template,
            started=self.epoch + started,
            restart_count=restarts,
            cpu_core_seconds=template.cpu_cores * profile.integral(started, rel),
            cpu_cores=cpu_cores,
            level=level,
            working_set_bytes=_working_set(template, level, rel - started),
        )

    def container_memory_working_set(self, pod: Pod, container: str, t: float) -> int:
        return self.container_state(pod, container, t).working_set_bytes

    def _template(self, pod: Pod, container: str | ContainerTemplate) -> ContainerTemplate:
        if isinstance(container, ContainerTemplate):
            return container
        for template in pod.containers:
            if template.name == container:
                return template
        raise UnknownObjectError(f"pod {pod.namespace}/{pod.name} has no container {container!r}")

    # -- pod and node truth ------------------------------------------------------------------

    def pod_cpu_core_seconds(self, pod: Pod, t: float) -> float:
        """The pod cgroup's counter: all CPU since the pod was created (restarts included)."""
        rel = t - self.epoch
        created = pod.created - self.epoch
        return sum(c.cpu_cores * c.profile.integral(created, rel) for c in pod.containers)

    def pod_replaced(self, pod: Pod) -> float:
        """When churn replaces the pod by its successor (``inf`` without churn)."""
        churn = pod.slot.deployment.churn
        return math.inf if churn is None else pod.created + churn.every

    def expected_cpu_cores(self, pod: Pod, t0: float, t1: float) -> float:
        """Average CPU cores the pod's containers used over ``[t0, t1]`` (the true rate);
        time before the pod was created or after it was replaced counts as zero."""
        if t1 <= t0:
            raise ValueError(f"expected_cpu_cores needs t0 < t1, got {t0} and {t1}")
        start = max(t0, pod.created) - self.epoch
        end = min(t1, self.pod_replaced(pod)) - self.epoch
        used = sum(c.cpu_cores * c.profile.integral(start, end) for c in pod.containers)
        return used / (t1 - t0)

    def memory_working_set(self, pod: Pod, t: float) -> int:
        """Sum of the pod's containers' working sets at exactly ``t`` (what metrics.k8s.io
        serves). For the value a kubelet serves at wall time ``t``, pass
        ``cluster.sample_time(pod.node_name, t)``."""
        return sum(self.container_state(pod, c, t).working_set_bytes for c in pod.containers)

    def node_pods_cpu_core_seconds(self, node_name: str, t: float) -> float:
        """CPU used by every pod that ever ran on the node: the "pods" cgroup counter."""
        rel = t - self.epoch
        return sum(
            c.cpu_cores * c.profile.integral(slot.active_from, rel)
            for slot in self.slots(node_name)
            for c in slot.deployment.containers
        )

    def node_system_cpu_core_seconds(self, node_name: str, t: float) -> float:
        node = self.node(node_name)
        return (KUBELET_CPU_CORES + RUNTIME_CPU_CORES + OS_CPU_CORES) * (
            t - self.node_started(node)
        )

    def node_cpu_core_seconds(self, node_name: str, t: float) -> float:
        return self.node_pods_cpu_core_seconds(node_name, t) + self.node_system_cpu_core_seconds(
            node_name, t
        )

    def node_expected_cpu_cores(self, node_name: str, t0: float, t1: float) -> float:
        if t1 <= t0:
            raise ValueError(f"node_expected_cpu_cores needs t0 < t1, got {t0} and {t1}")
        used = self.node_cpu_core_seconds(node_name, t1) - self.node_cpu_core_seconds(node_name, t0)
        return used / (t1 - t0)

    def node_memory_working_set(self, node_name: str, t: float) -> int:
        pods = self.pods_on_node(node_name, t)
        return (
            KUBELET_MEMORY_BYTES
            + RUNTIME_MEMORY_BYTES
            + OS_MEMORY_BYTES
            + sum(self.memory_working_set(pod, t) + PAUSE_MEMORY_BYTES for pod in pods)
        )


def _working_set(template: ContainerTemplate, level: float, age: float) -> int:
    steady = template.memory_bytes * (1.0 + template.memory_follows_load * (level - 1.0))
    working_set = steady * warm_up(age)
    limit = template.resources.memory_limit_bytes
    if limit is not None:
        # A container at its limit would be OOM-killed; the simulation stays just below.
        working_set = min(working_set, 0.95 * limit)
    return max(int(working_set), 4096)


def _make_slot(
    *, seed: int, deployment: Deployment, index: int, node: Node, node_index: int, local: int
) -> Slot:
    pod_ip = f"10.{64 + node_index // 250}.{node_index % 250}.{local + 2}"
    if deployment.churn is not None:
        offset = deployment.churn.every * index / max(deployment.replicas, 1)
        return Slot(deployment, index, node, pod_ip, offset, -node.age_seconds)
    spread = 0.5 + 0.5 * stable_fraction(seed, deployment.namespace, deployment.name, index)
    age = min(deployment.age_seconds * spread, node.age_seconds)
    created = -math.floor(age)
    return Slot(deployment, index, node, pod_ip, created, created)


def _check(nodes: Sequence[Node], deployments: Sequence[Deployment], interval: int) -> list[str]:
    problems = []
    if not nodes:
        problems.append("at least one node is required")
    if interval < 1:
        problems.append(f"housekeeping_interval must be >= 1 second, got {interval}")
    seen_nodes: set[str] = set()
    for node in nodes:
        if node.name in seen_nodes:
            problems.append(f"node {node.name!r} is defined twice")
        seen_nodes.add(node.name)
        if not 0 <= node.sample_offset < max(interval, 1):
            problems.append(f"node {node.name!r}: sample_offset must be in [0, {interval})")
    seen: set[tuple[str, str]] = set()
    for d in deployments:
        where = f"deployment {d.namespace}/{d.name}"
        if (d.namespace, d.name) in seen:
            problems.append(f"{where} is defined twice")
        seen.add((d.namespace, d.name))
        if d.replicas < 0:
            problems.append(f"{where}: replicas must be >= 0, got {d.replicas}")
        if not d.containers:
            problems.append(f"{where}: needs at least one container")
        names = [c.name for c in d.containers]
        if len(set(names)) != len(names):
            problems.append(f"{where}: container names repeat: {names}")
        for c in d.containers:
            if c.cpu_cores < 0 or c.memory_bytes < 0:
                problems.append(f"{where}: container {c.name!r} has negative usage")
    return problems


# -- generated clusters ----------------------------------------------------------------------

APP_NAMES = (
    "web",
    "api",
    "cart",
    "worker",
    "cache",
    "search",
    "auth",
    "queue",
    "billing",
    "render",
    "mailer",
    "report",
    "gateway",
    "catalog",
    "ledger",
    "notify",
)
SIDECAR_NAMES = ("log-shipper", "metrics-agent", "proxy")


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What to generate. The same spec and seed always give the same cluster."""

    nodes: int = 3
    pods_per_node: int = 10
    namespaces: tuple[str, ...] = ("default", "shop", "batch")
    containers_per_pod: int | None = None  # None: a realistic mix of 1 to 3
    seed: int = 1
    housekeeping_interval: int = 10
    windows_nodes: int = 0
    churn_fraction: float = 0.1  # of deployments
    restart_fraction: float = 0.1  # of containers
    web_replicas: int = 3  # the "web" deployment (label app=web) that ramps up, for HPA demos

    def problems(self) -> list[str]:
        problems = []
        if self.nodes < 1:
            problems.append(f"nodes must be >= 1, got {self.nodes}")
        if self.pods_per_node < 0:
            problems.append(f"pods_per_node must be >= 0, got {self.pods_per_node}")
        if not self.namespaces:
            problems.append("at least one namespace is required")
        if self.containers_per_pod is not None and not 1 <= self.containers_per_pod <= 10:
            problems.append(f"containers_per_pod must be 1..10, got {self.containers_per_pod}")
        if not 0 <= self.windows_nodes <= self.nodes:
            problems.append(f"windows_nodes must be 0..nodes, got {self.windows_nodes}")
        for name in ("churn_fraction", "restart_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {value}")
        if self.housekeeping_interval < 1:
            problems.append(
                f"housekeeping_interval must be >= 1 second, got {self.housekeeping_interval}"
            )
        return problems


def generate_cluster(spec: ClusterSpec, epoch: int) -> Cluster:
    """A realistic cluster: ``spec.nodes * spec.pods_per_node`` pods over many deployments."""
    problems = spec.problems()
    if problems:
        raise ModelError(problems)
    rng = random.Random(spec.seed)  # noqa: S311 - a simulation, not security
    remaining = spec.nodes * spec.pods_per_node
    deployments = []
    index = 0
    while remaining > 0:
        first = index == 0
        base = APP_NAMES[index % len(APP_NAMES)]
        name = base if index < len(APP_NAMES) else f"{base}-{index // len(APP_NAMES)}"
        namespace = spec.namespaces[index % len(spec.namespaces)]
        replicas = min(remaining, spec.web_replicas if first else rng.randint(1, 4))
        containers = _generate_containers(spec, rng, name, ramp=first)
        churn = None
        if not first and rng.random() < spec.churn_fraction:
            churn = Churn(every=float(rng.randint(300, 1200)), phase=float(rng.randint(0, 300)))
        volumes = [
            VolumeTemplate(
                f"kube-api-access-{stable_token(spec.seed, name)}", "projected", 41_943_040, 12_288
            )
        ]
        if rng.random() < 0.3:
            volumes.append(
                VolumeTemplate(
                    "data",
                    "pvc",
                    10 * GIB,
                    rng.randint(50, 500) * MIB,
                    growth_bytes_per_second=float(rng.randint(100, 4000)),
                    claim_name=f"{name}-data",
                )
            )
        if rng.random() < 0.3:
            volumes.append(
                VolumeTemplate(
                    "cache", "emptyDir", 0, rng.randint(1, 64) * MIB, growth_bytes_per_second=50.0
                )
            )
        deployments.append(
            Deployment(
                namespace=namespace,
                name=name,
                replicas=replicas,
                containers=containers,
                labels={"app": name},
                volumes=tuple(volumes),
                churn=churn,
                age_seconds=float(rng.randint(1, 48) * 3600),
            )
        )
        remaining -= replicas
        index += 1
    # Size nodes to hold what lands on them (round-robin, as Cluster places slots).
    cpu_needed = [0.0] * spec.nodes
    memory_needed = [0] * spec.nodes
    position = 0
    for deployment in deployments:
        for _ in range(deployment.replicas):
            for c in deployment.containers:
                cpu_needed[position % spec.nodes] += c.resources.cpu_limit_millicores or 500
                memory_needed[position % spec.nodes] += c.resources.memory_limit_bytes or GIB
            position += 1
    width = len(str(spec.nodes))
    nodes = []
    for i in range(spec.nodes):
        name = f"sim-node-{i + 1:0{width}d}"
        os: OperatingSystem = "windows" if i >= spec.nodes - spec.windows_nodes else "linux"
        cores = rng.choice((4, 8, 16))
        while cores * 1000 < cpu_needed[i] * 0.6:
            cores *= 2
        memory = rng.choice((16, 32, 64)) * GIB
        while memory < memory_needed[i] * 0.6 + 2 * GIB:
            memory *= 2
        nodes.append(
            Node(
                name=name,
                cpu_cores=cores,
                memory_bytes=memory,
                internal_ip=f"10.0.{i // 250}.{i % 250 + 1}",
                os=os,
                labels={
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": os,
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "sim.large",
                },
                age_seconds=float(rng.randint(2, 30) * 86400),
                sample_offset=rng.randrange(spec.housekeeping_interval),
            )
        )
    return Cluster(
        nodes,
        deployments,
        epoch=epoch,
        seed=spec.seed,
        housekeeping_interval=spec.housekeeping_interval,
    )


def _generate_containers(
    spec: ClusterSpec, rng: random.Random, app: str, *, ramp: bool
) -> tuple[ContainerTemplate, ...]:
    count = spec.containers_per_pod or rng.choice((1, 1, 2, 2, 3))
    containers = []
    for i in range(count):
        name = app if i == 0 else SIDECAR_NAMES[(i - 1) % len(SIDECAR_NAMES)]
        if i > len(SIDECAR_NAMES):
            name = f"{name}-{i}"
        cpu_request = rng.choice((50, 100, 200, 250, 500))
        memory_request = rng.choice((64, 128, 256, 512)) * MIB
        limited = rng.random() < 0.7
        resources = Resources(
            cpu_request_millicores=cpu_request,
            cpu_limit_millicores=2 * cpu_request if limited else None,
            memory_request_bytes=memory_request,
            memory_limit_bytes=2 * memory_request if limited else None,
        )
        cpu_cores = cpu_request / 1000 * rng.uniform(0.2, 0.8)
        headroom = (resources.cpu_limit_millicores or 4000) / 1000 * 0.95 / cpu_cores
        kind = "ramp" if ramp and i == 0 else rng.choice(("steady",) * 3 + ("ramp", "spike"))
        profile: Profile
        if kind == "ramp":
            profile = Ramp(
                start=float(rng.randint(60, 300)),
                duration=float(rng.randint(300, 900)),
                peak=min(rng.uniform(2.0, 3.0), headroom),
            )
        elif kind == "spike":
            period = float(rng.randint(120, 600))
            profile = Spike(
                period=period,
                duration=period * rng.uniform(0.1, 0.3),
                height=min(rng.uniform(2.0, 4.0), headroom),
                phase=float(rng.randint(0, 600)),
            )
        else:
            profile = Steady(
                wobble=rng.uniform(0.02, 0.15),
                period=float(rng.randint(120, 900)),
                phase=rng.uniform(0, 2 * math.pi),
            )
        restarts = None
        if rng.random() < spec.restart_fraction:
            every = float(rng.randint(600, 1800))
            restarts = Restarts(every=every, phase=float(rng.randint(60, int(every))))
        image = (
            f"registry.example/{app}:1.{rng.randint(0, 9)}"
            if i == 0
            else (f"registry.example/{name}:2.{rng.randint(0, 9)}")
        )
        containers.append(
            ContainerTemplate(
                name=name,
                image=image,
                cpu_cores=cpu_cores,
                memory_bytes=int(memory_request * rng.uniform(0.3, 0.7)),
                resources=resources,
                profile=profile,
                restarts=restarts,
            )
        )
    return tuple(containers)
