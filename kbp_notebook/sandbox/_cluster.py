"""The Sandbox class: real Kafka brokers (KRaft) plus Prometheus on free loopback ports."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from kbp_notebook._cache import cache_dir
from kbp_notebook._prometheus_http import PrometheusHttp
from kbp_notebook.errors import KbpConnectionError, KbpError, KbpInputError
from kbp_notebook.sandbox._jars import _asset, _check_java, _java, fetch_jars
from kbp_notebook.sandbox._process import (
    _LOG_TAIL_LINES,
    _OWNER_FILE,
    _WORKDIR_PREFIX,
    _free_ports,
    _random_cluster_id,
    _read_start,
    _render_properties,
    _spawn,
    _sweep_stale_workdirs,
    _tail,
    _terminate,
)
from kbp_notebook.sandbox._prometheus import (
    _PROMETHEUS_JOB,
    _Prometheus,
    _prometheus_config,
    _query,
    _start_prometheus,
    _targets_summary,
    _wait_for_series,
)

_BROKER_MAIN = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"
_CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

_BROKER_JVM_OPTS = (
    "-Xms64m",
    # 256m ran out of heap in 2 of ~5 three-broker starts under load; memory is plentiful
    # (24 GiB), CPU is not, and the serial GC only grows the heap when it must.
    "-Xmx512m",
    "-XX:+UseSerialGC",
    # C1 only: a third less CPU to start a broker (measured 5.5 s -> 3.5 s); an idle
    # test broker never needs C2's peak speed, and 2 shared cores do need the CPU.
    "-XX:TieredStopAtLevel=1",
    "-XX:MaxMetaspaceSize=160m",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_TOOL_JVM_OPTS = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
_SCRAM_MECHANISM = "SCRAM-SHA-512"
_START_ATTEMPTS = 3

# Characters that the --add-scram parser of kafka-storage treats as syntax.
_SCRAM_FORBIDDEN = re.compile(r'[\s,\[\]="\\]')

# Strong references: a running sandbox forgotten by its caller is still stopped at exit.
_LIVE_SANDBOXES: set[Sandbox] = set()


@dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    sasl_port: int | None
    exporter_port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None
    pid: int | None = None  # for detached nodes reattached from a state file

    @property
    def log_path(self) -> Path:
        return self.directory / "logs" / "server.log"

    @property
    def stdout_path(self) -> Path:
        return self.directory / "logs" / "stdout.log"


@dataclass
class _Timings:
    format_s: float = 0.0
    brokers_ready_s: float = 0.0
    prometheus_ready_s: float = 0.0
    total_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class Sandbox:
    r"""A throwaway real Kafka 4 cluster (KRaft) with JMX exporter and Prometheus.

    Parameters
    ----------
    brokers
        1 or 3 nodes, each a combined broker + controller, ids 1..N.
    prometheus
        Also run a Prometheus server scraping every broker's exporter each second.
    scram_users
        ``{"name": "password"}``: adds a SASL_PLAINTEXT listener (SCRAM-SHA-512,
        :attr:`sasl_bootstrap_servers`) and creates these users when the storage is
        formatted. Names and passwords may not contain spaces, ``, [ ] = " \\``.
    broker_config
        Extra or overriding ``server.properties`` entries for every broker,
        e.g. ``{"log.flush.interval.messages": 1}``.
    workdir
        Where data, configs and logs go. Default: a new temporary directory,
        removed by :meth:`stop`; a given directory is left in place.
    start_timeout_s
        How long :meth:`start` waits for brokers and Prometheus.

    Examples
    --------
    >>> with Sandbox(brokers=1) as sb:  # doctest: +SKIP
    ...     sb.consumer_groups("--list").stdout
    """

    def __init__(
        self,
        brokers: int = 1,
        *,
        prometheus: bool = True,
        scram_users: Mapping[str, str] | None = None,
        broker_config: Mapping[str, object] | None = None,
        workdir: str | os.PathLike[str] | None = None,
        start_timeout_s: float = 180.0,
        _detached: bool = False,
    ) -> None:
        if brokers not in (1, 3):
            raise KbpInputError(f"brokers={brokers!r}: the sandbox runs 1 or 3 brokers.")
        users = dict(scram_users or {})
        for name, password in users.items():
            if not name or _SCRAM_FORBIDDEN.search(name) or _SCRAM_FORBIDDEN.search(password):
                raise KbpInputError(
                    f"SCRAM user {name!r}: names and passwords may not be empty or contain "
                    'spaces or any of , [ ] = " \\ (kafka-storage cannot take them); pick '
                    "simpler ones.",
                    user=name,
                )
        self._brokers = brokers
        self._with_prometheus = prometheus
        self._scram_users = users
        self._broker_config = dict(broker_config or {})
        self._given_workdir = Path(workdir) if workdir is not None else None
        self._start_timeout_s = start_timeout_s
        self._detached = _detached
        self._workdir: Path | None = None
        self._nodes: dict[int, _Node] = {}
        self._prometheus: _Prometheus | None = None
        self._jars: Path | None = None
        self._java: str | None = None
        self._cluster_id = _random_cluster_id()
        self._started = False
        self.timings = _Timings()

    # ---------------------------------------------------------------- properties

    def _require_started(self) -> None:
        if not self._started:
            raise KbpError("the sandbox is not running: call .start() (or use 'with Sandbox()').")

    @property
    def broker_ids(self) -> list[int]:
        """Node ids of the brokers: ``[1]`` or ``[1, 2, 3]``."""
        return list(range(1, self._brokers + 1))

    @property
    def request_handler_pools(self) -> int:
        """Request handler pools per node that share Kafka's idle meter: 2 (combined mode).

        Pass it to :meth:`PrometheusSource.broker_metrics` so that
        ``request_handler_idle_ratio`` reads as a 0..1 ratio.
        """
        return 2

    @property
    def bootstrap_servers(self) -> str:
        """PLAINTEXT bootstrap servers, ``"127.0.0.1:PORT[,...]"``."""
        self._require_started()
        return ",".join(f"127.0.0.1:{n.port}" for n in self._nodes.values())

    @property
    def sasl_bootstrap_servers(self) -> str:
        """SASL_PLAINTEXT (SCRAM-SHA-512) bootstrap servers; needs ``scram_users``."""
        self._require_started()
        if not self._scram_users:
            raise KbpError(
                "this sandbox has no SASL listener: create it with scram_users={'user': 'pw'}."
            )
        return ",".join(f"127.0.0.1:{n.sasl_port}" for n in self._nodes.values())

    @property
    def prometheus_url(self) -> str:
        """Base URL of the sandbox's Prometheus, ``"http://127.0.0.1:PORT"``."""
        self._require_started()
        if self._prometheus is None:
            raise KbpError("this sandbox runs without Prometheus: create it with prometheus=True.")
        return f"http://127.0.0.1:{self._prometheus.port}"

    @property
    def exporter_urls(self) -> dict[int, str]:
        """JMX exporter endpoint of each broker, ``{id: "http://127.0.0.1:PORT/metrics"}``."""
        self._require_started()
        return {i: f"http://127.0.0.1:{n.exporter_port}/metrics" for i, n in self._nodes.items()}

    @property
    def workdir(self) -> Path:
        """Directory holding the brokers' data, configs and logs."""
        self._require_started()
        assert self._workdir is not None
        return self._workdir

    @property
    def cluster_id(self) -> str:
        """The KRaft cluster id the storage was formatted with."""
        return self._cluster_id

    @property
    def is_running(self) -> bool:
        """Whether :meth:`start` succeeded and :meth:`stop` has not run."""
        return self._started

    def broker_address(self, broker_id: int) -> str:
        """PLAINTEXT ``host:port`` of one broker."""
        return f"127.0.0.1:{self._node(broker_id).port}"

    def broker_log(self, broker_id: int) -> Path:
        """Path of one broker's ``server.log``."""
        return self._node(broker_id).log_path

    def broker_pid(self, broker_id: int) -> int | None:
        """Process id of one broker's JVM, or None while it is stopped."""
        node = self._node(broker_id)
        if node.proc is not None and node.proc.poll() is None:
            return node.proc.pid
        return None

    def scram_client_config(self, user: str | None = None) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients on the SASL listener.

        Parameters
        ----------
        user
            One of ``scram_users``; default the first.

        Returns
        -------
        dict
            ``bootstrap_servers``, ``security_protocol``, ``sasl_mechanism``,
            ``sasl_plain_username``, ``sasl_plain_password``.
        """
        bootstrap = self.sasl_bootstrap_servers
        name = user if user is not None else next(iter(self._scram_users))
        if name not in self._scram_users:
            raise KbpInputError(f"no SCRAM user {name!r} in this sandbox.", user=name)
        return {
            "bootstrap_servers": bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": _SCRAM_MECHANISM,
            "sasl_plain_username": name,
            "sasl_plain_password": self._scram_users[name],
        }

    def _node(self, broker_id: int) -> _Node:
        self._require_started()
        try:
            return self._nodes[broker_id]
        except KeyError:
            raise KbpInputError(
                f"no broker {broker_id!r} in this sandbox; ids are {self.broker_ids}.",
                broker_id=broker_id,
            ) from None

    def __repr__(self) -> str:
        if not self._started:
            return f"Sandbox(brokers={self._brokers}, not running)"
        prom = f", prometheus_url={self.prometheus_url!r}" if self._prometheus else ""
        return (
            f"Sandbox(brokers={self._brokers}, bootstrap_servers={self.bootstrap_servers!r}{prom})"
        )

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Sandbox:
        """Start brokers (and Prometheus) and wait until they really answer.

        Returns
        -------
        Sandbox
            ``self``.

        Raises
        ------
        KbpConnectionError
            If a broker or Prometheus is not ready in time; the message has the tail
            of the failing process's log. Everything started is stopped again.
        KbpError
            If jars cannot be fetched or Java is missing.
        """
        if self._started:
            return self
        t0 = time.monotonic()
        self._jars = fetch_jars()
        self._java = _java()
        _check_java(self._java)
        _sweep_stale_workdirs()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once()
                break
            except BaseException as exc:
                # Free ports are picked before the JVMs bind them, and other programs
                # on the machine may take one in between: then retry on new ports.
                clash = isinstance(exc, KbpConnectionError) and self._port_clash()
                self.stop()
                if not clash or attempt == _START_ATTEMPTS:
                    raise
                self._nodes = {}
                self._prometheus = None
                self._cluster_id = _random_cluster_id()
        self.timings.total_s = time.monotonic() - t0
        return self

    def _start_once(self) -> None:
        t0 = time.monotonic()
        if self._given_workdir is not None:
            self._workdir = self._given_workdir.resolve()
            self._workdir.mkdir(parents=True, exist_ok=True)
        else:
            base = cache_dir() / "sandboxes" if self._detached else None
            if base is not None:
                base.mkdir(parents=True, exist_ok=True)
            self._workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX, dir=base))
            (self._workdir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
        self._started = True  # from here on stop() cleans up whatever exists
        if not self._detached:
            _LIVE_SANDBOXES.add(self)
        self._layout()
        t1 = time.monotonic()
        self._format_storage()
        self.timings.format_s = time.monotonic() - t1
        for node in self._nodes.values():
            self._start_node(node)
        if self._prometheus is not None:
            self._start_prometheus()
        t2 = time.monotonic()
        deadline = t0 + self._start_timeout_s
        self._wait_brokers(self.broker_ids, deadline=deadline)
        self.timings.brokers_ready_s = time.monotonic() - t2
        if self._prometheus is not None:
            t3 = time.monotonic()
            self._wait_prometheus_ready(deadline=deadline)
            self.timings.prometheus_ready_s = time.monotonic() - t3

    def _port_clash(self) -> bool:
        logs = [p for n in self._nodes.values() for p in (n.stdout_path, n.log_path)]
        if self._prometheus is not None:
            logs.append(self._prometheus.log_path)
        # Search whole files: a broker that failed to bind logs its long shutdown after.
        return any("address already in use" in _read_start(p).lower() for p in logs)

    def stop(self, *, timeout_s: float = 15.0) -> None:
        """Stop every process this sandbox started and remove its temporary directory.

        Only the sandbox's own child processes are signalled (SIGTERM, then SIGKILL
        after ``timeout_s``). Safe to call twice.
        """
        if not self._started:
            return
        procs = [n.proc for n in self._nodes.values() if n.proc is not None]
        if self._prometheus is not None and self._prometheus.proc is not None:
            procs.append(self._prometheus.proc)
        _terminate(procs, timeout_s=timeout_s)
        for node in self._nodes.values():
            node.proc = None
        if self._prometheus is not None:
            self._prometheus.proc = None
        self._started = False
        _LIVE_SANDBOXES.discard(self)
        if (
            self._given_workdir is None
            and self._workdir is not None
            and not os.environ.get("KBP_SANDBOX_KEEP")
        ):
            shutil.rmtree(self._workdir, ignore_errors=True)

    def stop_broker(
        self, broker_id: int, *, graceful: bool = True, timeout_s: float = 60.0
    ) -> None:
        """Stop one broker (SIGTERM: controlled shutdown; ``graceful=False``: SIGKILL).

        Returns when the JVM has exited.
        """
        node = self._node(broker_id)
        if node.proc is None or node.proc.poll() is not None:
            node.proc = None
            return
        if graceful:
            _terminate([node.proc], timeout_s=timeout_s)
        else:
            node.proc.kill()
            node.proc.wait(timeout=30)
        node.proc = None

    def restart_stopped_brokers(self, *, timeout_s: float = 120.0) -> list[int]:
        """Start every broker that is not running (after a fault test); return their ids."""
        self._require_started()
        stopped = [i for i in self.broker_ids if self.broker_pid(i) is None]
        for broker_id in stopped:
            self.start_broker(broker_id, timeout_s=timeout_s)
        return stopped

    def start_broker(self, broker_id: int, *, timeout_s: float = 120.0) -> None:
        """Start a broker stopped by :meth:`stop_broker` and wait until it answers metadata.

        Raises
        ------
        KbpConnectionError
            If it does not come back within ``timeout_s`` (with the tail of its log).
        """
        node = self._node(broker_id)
        if node.proc is not None and node.proc.poll() is None:
            return
        self._start_node(node)
        self._wait_brokers([broker_id], deadline=time.monotonic() + timeout_s)

    # ---------------------------------------------------------------- internals

    def _layout(self) -> None:
        assert self._workdir is not None
        n = self._brokers
        per_node = 4 if self._scram_users else 3
        ports = _free_ports(per_node * n + (1 if self._with_prometheus else 0))
        for i in self.broker_ids:
            chunk = ports[(i - 1) * per_node : i * per_node]
            self._nodes[i] = _Node(
                node_id=i,
                port=chunk[0],
                controller_port=chunk[1],
                exporter_port=chunk[2],
                sasl_port=chunk[3] if self._scram_users else None,
                directory=self._workdir / f"broker-{i}",
            )
        if self._with_prometheus:
            self._prometheus = _Prometheus(port=ports[-1], directory=self._workdir / "prometheus")
        for stale in [n.directory for n in self._nodes.values()] + (
            [self._prometheus.directory] if self._prometheus else []
        ):
            # A reused workdir holds an older cluster's storage, which format refuses.
            shutil.rmtree(stale, ignore_errors=True)
        voters = ",".join(f"{i}@127.0.0.1:{nd.controller_port}" for i, nd in self._nodes.items())
        for node in self._nodes.values():
            (node.directory / "logs").mkdir(parents=True, exist_ok=True)
            (node.directory / "config").mkdir(parents=True, exist_ok=True)
            props = self._server_properties(node, voters)
            (node.directory / "config" / "server.properties").write_text(_render_properties(props))
            shutil.copy(
                _asset("jmx-exporter.yaml"), node.directory / "config" / "jmx-exporter.yaml"
            )
            shutil.copy(
                _asset("broker-log4j2.properties"), node.directory / "config" / "log4j2.properties"
            )
        if self._prometheus is not None:
            self._prometheus.directory.mkdir(parents=True, exist_ok=True)
            (self._prometheus.directory / "prometheus.yml").write_text(self._prometheus_config())

    def _server_properties(self, node: _Node, voters: str) -> dict[str, object]:
        n = self._brokers
        listeners = [f"PLAINTEXT://127.0.0.1:{node.port}"]
        advertised = [f"PLAINTEXT://127.0.0.1:{node.port}"]
        protocol_map = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if node.sasl_port is not None:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{node.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://127.0.0.1:{node.sasl_port}")
            protocol_map.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        listeners.append(f"CONTROLLER://127.0.0.1:{node.controller_port}")
        props: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "listener.security.protocol.map": ",".join(protocol_map),
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(node.directory / "data"),
            "num.partitions": 1,
            "auto.create.topics.enable": True,
            "default.replication.factor": 1,
            "group.initial.rebalance.delay.ms": 0,
            "offsets.topic.num.partitions": 8,
            "offsets.topic.replication.factor": min(3, n),
            "transaction.state.log.num.partitions": 8,
            "transaction.state.log.replication.factor": min(3, n),
            "transaction.state.log.min.isr": min(2, n),
            "share.coordinator.state.topic.num.partitions": 8,
            "share.coordinator.state.topic.replication.factor": min(3, n),
            "share.coordinator.state.topic.min.isr": min(2, n),
            "log.segment.bytes": 4 * 1024 * 1024,
            "log.retention.check.interval.ms": 30_000,
            "num.network.threads": 3,
            "num.io.threads": 4,
            "num.recovery.threads.per.data.dir": 1,
        }
        if node.sasl_port is not None:
            props["sasl.enabled.mechanisms"] = _SCRAM_MECHANISM
            props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
        props.update(self._broker_config)
        return props

    def _prometheus_config(self) -> str:
        return _prometheus_config({i: node.exporter_port for i, node in self._nodes.items()})

    def _java_cmd(self, main_class: str, *, opts: Sequence[str], log4j: Path) -> list[str]:
        assert self._jars is not None and self._java is not None
        return [
            self._java,
            *opts,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            str(self._jars / "lib" / "*"),
            main_class,
        ]

    def _format_storage(self) -> None:
        def fmt(node: _Node) -> None:
            cmd = self._java_cmd(
                _STORAGE_TOOL, opts=_TOOL_JVM_OPTS, log4j=_asset("tools-log4j2.properties")
            )
            cmd += [
                "format",
                "-t",
                self._cluster_id,
                "-c",
                str(node.directory / "config" / "server.properties"),
            ]
            for name, password in self._scram_users.items():
                cmd += ["--add-scram", f"{_SCRAM_MECHANISM}=[name={name},password={password}]"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
            if proc.returncode != 0:
                # The output can echo the --add-scram arguments: keep passwords out of it.
                text = proc.stdout + proc.stderr
                for password in self._scram_users.values():
                    text = text.replace(password, "***")
                raise KbpError(
                    f"kafka-storage format failed for broker {node.node_id} "
                    f"(exit {proc.returncode}) in {node.directory}:\n{text.strip()[-2000:]}",
                    broker_id=node.node_id,
                )

        with ThreadPoolExecutor(max_workers=len(self._nodes)) as pool:
            list(pool.map(fmt, self._nodes.values()))

    def _start_node(self, node: _Node) -> None:
        assert self._jars is not None
        config = node.directory / "config"
        agent = self._jars / "agent" / "jmx_prometheus_javaagent.jar"
        opts = [
            *_BROKER_JVM_OPTS,
            f"-Dkafka.logs.dir={node.directory / 'logs'}",
            f"-javaagent:{agent}=127.0.0.1:{node.exporter_port}:{config / 'jmx-exporter.yaml'}",
        ]
        cmd = self._java_cmd(_BROKER_MAIN, opts=opts, log4j=config / "log4j2.properties")
        cmd.append(str(config / "server.properties"))
        node.proc = _spawn(
            cmd, log_path=node.stdout_path, cwd=node.directory, detached=self._detached
        )

    def _start_prometheus(self) -> None:
        assert self._prometheus is not None
        _start_prometheus(self._prometheus, detached=self._detached)

    def _check_alive(self, node: _Node) -> None:
        if node.proc is not None and node.proc.poll() is not None:
            log = node.log_path if node.log_path.exists() else node.stdout_path
            out = _tail(node.stdout_path, 15)
            raise KbpConnectionError(
                f"broker {node.node_id} (127.0.0.1:{node.port}) exited with code "
                f"{node.proc.returncode} while starting; last lines of {log}:\n{_tail(log)}"
                f"\n--- stdout/stderr ({node.stdout_path}):\n{out}",
                address=f"127.0.0.1:{node.port}",
                log_path=str(log),
            )

    def _wait_brokers(self, broker_ids: Sequence[int], *, deadline: float) -> None:
        expected = set(self._nodes)
        pending = list(broker_ids)
        while pending:
            # A quorum member that died keeps the others waiting: notice any of them.
            for other in self._nodes.values():
                self._check_alive(other)
            node = self._nodes[pending[0]]
            if _broker_ready(f"127.0.0.1:{node.port}", expected):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise KbpConnectionError(
                    f"broker {node.node_id} at 127.0.0.1:{node.port} did not answer a metadata "
                    f"request listing brokers {sorted(expected)} in time.\n{self._nodes_report()}"
                    "\n(set KBP_SANDBOX_KEEP=1 to keep the sandbox's logs)",
                    address=f"127.0.0.1:{node.port}",
                    log_path=str(node.log_path),
                )
            time.sleep(0.25)

    def _nodes_report(self) -> str:
        parts = []
        for node in self._nodes.values():
            try:
                with socket.create_connection(("127.0.0.1", node.port), timeout=1):
                    listening = "accepts connections"
            except OSError:
                listening = "refuses connections"
            running = "running" if node.proc is not None and node.proc.poll() is None else "down"
            lines = 12 if len(self._nodes) > 1 else _LOG_TAIL_LINES
            parts.append(
                f"--- broker {node.node_id} ({running}, 127.0.0.1:{node.port} {listening}); "
                f"last lines of {node.log_path}:\n{_tail(node.log_path, lines)}"
            )
        return "\n".join(parts)

    def _wait_prometheus_ready(self, *, deadline: float) -> None:
        assert self._prometheus is not None
        query = (
            f"count(kafka_server_replicamanager_underreplicatedpartitions"
            f'{{job="{_PROMETHEUS_JOB}"}}) >= {self._brokers}'
        )
        while True:
            proc = self._prometheus.proc
            if proc is not None and proc.poll() is not None:
                raise KbpConnectionError(
                    f"prometheus exited with code {proc.returncode}; last lines of "
                    f"{self._prometheus.log_path}:\n{_tail(self._prometheus.log_path)}",
                    address=self.prometheus_url,
                )
            with contextlib.suppress(KbpError):  # 503 or not JSON while it starts
                if self.query_prometheus(query):
                    return
            if time.monotonic() > deadline:
                node = self._nodes[1]
                raise KbpConnectionError(
                    f"Prometheus at {self.prometheus_url} has no kafka series after waiting "
                    f"(query {query!r}); scrape targets: {self._targets_summary()}; "
                    f"last lines of {self._prometheus.log_path}:\n"
                    f"{_tail(self._prometheus.log_path)}\n--- broker 1 stdout:\n"
                    f"{_tail(node.stdout_path, 15)}",
                    address=self.prometheus_url,
                    query=query,
                )
            time.sleep(0.25)

    def _targets_summary(self) -> str:
        return _targets_summary(self.prometheus_url)

    # ---------------------------------------------------------------- prometheus
    def query_prometheus(self, promql: str, *, time_s: float | None = None) -> list[dict[str, Any]]:
        """Run an instant PromQL query on the sandbox's Prometheus.

        Returns
        -------
        list of dict
            Prometheus's ``data.result``: ``{"metric": {...}, "value": [t, "v"]}`` items.

        Raises
        ------
        KbpConnectionError
            If Prometheus does not answer or rejects the query.
        """
        return _query(self.prometheus_url, promql, time_s=time_s)

    def wait_for_prometheus_series(
        self, promql: str, timeout_s: float = 60, *, poll_s: float = 0.5
    ) -> list[dict[str, Any]]:
        """Poll Prometheus until the instant query ``promql`` returns data.

        Parameters
        ----------
        promql
            Any instant query, e.g.
            ``'kafka_server_brokertopicmetrics_messagesin_total{topic="t"} > 0'``.
        timeout_s
            How long to wait.

        Returns
        -------
        list of dict
            The first non-empty ``data.result``.

        Raises
        ------
        KbpConnectionError
            If there is still no data after ``timeout_s`` (names the query and URL).
        """
        return _wait_for_series(self.prometheus_url, promql, timeout_s, poll_s=poll_s)

    def exporter_text(self, broker_id: int) -> str:
        """Return the current Prometheus text exposition of one broker's JMX exporter."""
        return PrometheusHttp(
            self.exporter_urls[broker_id],
            service=f"JMX exporter of broker {broker_id}",
            hint="is the broker running?",
        ).text()

    # ---------------------------------------------------------------- tools

    def tool_command(self, main_class: str, *args: str) -> list[str]:
        """Return the command line that runs a Kafka tool class from the sandbox's jars.

        For tools that keep running (``ConsoleConsumer``, ``ConsoleShareConsumer``):
        start it with ``subprocess.Popen`` and stop it by its pid. Small heap, as
        :meth:`run_tool`.

        Parameters
        ----------
        main_class
            e.g. ``"org.apache.kafka.tools.consumer.ConsoleConsumer"``.
        *args
            Its arguments (nothing is filled in).

        Returns
        -------
        list of str
            ``java ... main_class *args``.
        """
        if self._jars is None:
            self._jars = fetch_jars()
        if self._java is None:
            self._java = _java()
            _check_java(self._java)
        cmd = self._java_cmd(
            main_class, opts=_TOOL_JVM_OPTS, log4j=_asset("tools-log4j2.properties")
        )
        return cmd + list(args)

    def run_tool(
        self, main_class: str, *args: str, timeout_s: float = 180.0
    ) -> subprocess.CompletedProcess[str]:
        """Run any Kafka command-line tool class from the sandbox's jars.

        Parameters
        ----------
        main_class
            e.g. ``"org.apache.kafka.tools.TopicCommand"``.
        *args
            Its arguments (nothing is filled in).

        Returns
        -------
        subprocess.CompletedProcess
            With text ``stdout`` / ``stderr``; a non-zero exit code is not raised.
        """
        cmd = self.tool_command(main_class, *args)
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KbpConnectionError(
                f"{main_class} did not finish within {timeout_s:g} s; is the sandbox running?",
                tool=main_class,
            ) from exc

    def consumer_groups(
        self,
        *args: str,
        command_config: Mapping[str, object] | str | os.PathLike[str] | None = None,
        bootstrap_servers: str | None = None,
        timeout_s: float = 180.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the official ``kafka-consumer-groups`` tool with ``--bootstrap-server`` filled in.

        Parameters
        ----------
        *args
            The tool's arguments, e.g. ``"--describe", "--all-groups"``.
        command_config
            Client properties (a dict, or a path to a properties file) for
            ``--command-config``. A dict with ``security.protocol`` SASL_* uses the
            SASL listener.
        bootstrap_servers
            Override the bootstrap servers.

        Returns
        -------
        subprocess.CompletedProcess
            Text ``stdout`` / ``stderr``; a non-zero exit code is not raised.
        """
        self._require_started()
        with contextlib.ExitStack() as stack:
            extra: list[str] = []
            bootstrap = bootstrap_servers
            if isinstance(command_config, Mapping):
                if bootstrap is None and str(
                    command_config.get("security.protocol", "")
                ).startswith("SASL"):
                    bootstrap = self.sasl_bootstrap_servers
                fd, name = tempfile.mkstemp(prefix="kbp-cmdcfg-", suffix=".properties")
                stack.callback(os.unlink, name)
                with os.fdopen(fd, "w") as fh:
                    fh.write(_render_properties(command_config))
                extra = ["--command-config", name]
            elif command_config is not None:
                extra = ["--command-config", os.fspath(command_config)]
            bootstrap = bootstrap or self.bootstrap_servers
            return self.run_tool(
                _CONSUMER_GROUP_COMMAND,
                "--bootstrap-server",
                bootstrap,
                *extra,
                *args,
                timeout_s=timeout_s,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    # ---------------------------------------------------------------- state file (CLI)

    def _state(self) -> dict[str, Any]:
        assert self._workdir is not None
        return {
            "workdir": str(self._workdir),
            "remove_workdir": self._given_workdir is None,
            "cluster_id": self._cluster_id,
            "bootstrap_servers": self.bootstrap_servers,
            "sasl_bootstrap_servers": self.sasl_bootstrap_servers if self._scram_users else None,
            "prometheus_url": self.prometheus_url if self._prometheus else None,
            "brokers": {
                str(i): {
                    "pid": n.proc.pid if n.proc else None,
                    "port": n.port,
                    "exporter_port": n.exporter_port,
                    "log": str(n.log_path),
                }
                for i, n in self._nodes.items()
            },
            "prometheus": (
                {
                    "pid": self._prometheus.proc.pid if self._prometheus.proc else None,
                    "port": self._prometheus.port,
                }
                if self._prometheus
                else None
            ),
        }


def _broker_ready(address: str, expected_ids: set[int]) -> bool:
    """Tell whether ``address`` answers a metadata request listing all ``expected_ids``."""
    from kafka import KafkaAdminClient  # lazy: kafka-python only when a sandbox runs

    host, _, port = address.rpartition(":")
    try:
        # kafka-python waits bootstrap_timeout_ms on a closed port: ask the socket first.
        with socket.create_connection((host, int(port)), timeout=2):
            pass
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=address,
            client_id="kbp-sandbox-probe",
            request_timeout_ms=5000,
            bootstrap_timeout_ms=5000,
            connections_max_idle_ms=10_000,
        )
    except Exception:  # noqa: BLE001 - any failure to connect means "not yet"
        return False
    try:
        cluster = admin.describe_cluster()
        ids = {
            int(b["broker_id"]) for b in cluster.get("brokers", []) if not b.get("is_fenced", False)
        }
        return expected_ids <= ids
    except Exception:  # noqa: BLE001
        return False
    finally:
        with contextlib.suppress(Exception):
            admin.close()


@atexit.register
def _stop_live_sandboxes() -> None:
    for sandbox in list(_LIVE_SANDBOXES):
        with contextlib.suppress(Exception):
            sandbox.stop(timeout_s=5)

