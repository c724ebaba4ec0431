"""A throwaway real Kafka cluster, with the JMX exporter and Prometheus, on loopback.

Used by every integration test, scenario and benchmark of the project, and by
``kbp sandbox up`` for people who want a cluster to point a notebook at.

What runs
---------
* Apache Kafka 4.x (default :data:`DEFAULT_KAFKA_VERSION`, override with the
  environment variable ``KBP_KAFKA_VERSION``), resolved from Maven Central by
  ``mvn`` (:func:`fetch_jars`) and started with ``java`` (17 or newer; set
  ``KBP_JAVA`` or ``JAVA_HOME`` to choose one). Each node is a KRaft
  combined broker + controller; three brokers form a three-voter quorum.
  Node ids are 1..N. Everything listens on 127.0.0.1 on free ports.
* The Prometheus JMX exporter java agent in every broker JVM, with the rules in
  ``sandbox_assets/jmx-exporter.yaml`` (only the MBeans listed there are read).
* The Debian ``prometheus`` server (``/usr/bin/prometheus``, or ``KBP_PROMETHEUS``),
  scraping every exporter each second, job ``kafka``, one label ``broker="<id>"``
  per target. Its TSDB lives in the sandbox's temporary directory.

Broker settings chosen for tests (``broker_config=`` overrides any of them):
heap ``-Xmx512m`` with the serial GC; ``auto.create.topics.enable=true`` and
``num.partitions=1`` (Kafka's defaults); ``group.initial.rebalance.delay.ms=0``;
internal topics (offsets, transactions, share-group state) with 8 partitions
and replication factor ``min(3, brokers)``, min ISR ``min(2, brokers)``;
``log.segment.bytes`` 4 MiB.

Prometheus series (exact names as stored, every one has ``job="kafka"``,
``broker="<id>"`` and ``instance`` labels)
-----------------------------------------------------------------------------
The canonical broker metrics of DESIGN.md (``log_flush_time_ms_p99``, ...) are
read from these series with the PromQL in
``kbp_notebook._metric_queries.BROKER_METRIC_QUERIES`` (its first candidate for
each metric is the one that matches here). Two things to know when reading the
raw series: ``RequestHandlerAvgIdlePercent`` is exported as a counter of idle
nanoseconds (``..._requesthandleravgidlepercent_count_total``; its rate / 1e9 is
the ratio, and a combined broker + controller node has two pools marking it, see
``Sandbox.request_handler_pools``), and the flush timer's ``..._mean`` is the
mean since the broker started.

Details:

* Quantile gauges carry ``quantile`` in ``"0.50" "0.75" "0.95" "0.98" "0.99"
  "0.999"`` (Kafka's Yammer reservoirs, recent ~5 minutes, in ms for ``...ms``).
  Every timer also has ``..._count_total`` (events) and ``..._mean``.
* ``BrokerTopicMetrics`` counters exist once without a ``topic`` label (the
  broker-wide total; ``{topic=""}`` selects it in PromQL) and once per topic with
  ``topic="<name>"``. Also exported: ``kafka_server_brokertopicmetrics_bytesrejected_total``,
  ``..._totalproducerequests_total``, ``..._totalfetchrequests_total``.
* ``RequestMetrics`` series exist for ``request`` in Produce, FetchConsumer,
  FetchFollower (``totaltimems``), Produce, FetchConsumer (``requestqueuetimems``) and
  Produce (``localtimems``, ``remotetimems``).
* Other gauges: ``kafka_server_replicamanager_{partitioncount,leadercount,
  offlinereplicacount,underminisrpartitioncount,atminisrpartitioncount,...}``,
  ``kafka_controller_kafkacontroller_{activecontrollercount,offlinepartitionscount,
  globalpartitioncount,globaltopiccount,...}``,
  ``kafka_network_requestchannel_requestqueuesize``,
  ``kafka_network_requestchannel_responsequeuesize``,
  ``kafka_server_delayedoperationpurgatory_purgatorysize{delayedoperation="Produce"|"Fetch"}``,
  and the exporter's own ``jvm_*`` / ``process_*`` series.

Examples
--------
>>> from kbp_notebook.sandbox import Sandbox
>>> with Sandbox(brokers=1) as sb:  # doctest: +SKIP
...     print(sb.bootstrap_servers, sb.prometheus_url)

Orphans: processes started by a :class:`Sandbox` in the main thread get
``PR_SET_PDEATHSIG`` (they die with the Python process, even on ``kill -9``);
every running sandbox is also stopped at interpreter exit. ``kbp sandbox up``
starts detached processes instead and ``kbp sandbox down`` stops them.

Layout of this sub-package: ``_jars`` (Maven resolution of the jars, Java
checks, bundled assets; the cache folder's rule is ``kbp_notebook._cache``),
``_process`` (spawning and stopping child processes, free ports, log tails, work directories),
``_prometheus`` (its scrape configuration, process and instant queries),
``_cluster`` (the :class:`Sandbox` class: brokers and Prometheus) and ``cli``
(``kbp sandbox fetch|up|status|down``). Everything is imported from here.
"""

from __future__ import annotations

# The private names are re-exported for tests and kbp_notebook.history_sandbox.
from kbp_notebook._cache import cache_dir
from kbp_notebook.sandbox._cluster import Sandbox
from kbp_notebook.sandbox._jars import (
    DEFAULT_KAFKA_VERSION,
    JMX_EXPORTER_VERSION,
    _asset,  # noqa: F401
    _kafka_version,  # noqa: F401
    _pom,  # noqa: F401
    fetch_jars,
)
from kbp_notebook.sandbox._process import (
    _free_ports,  # noqa: F401
    _render_properties,  # noqa: F401
    _spawn,  # noqa: F401
    _tail,  # noqa: F401
    _terminate,  # noqa: F401
)
from kbp_notebook.sandbox.cli import cli_main

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "JMX_EXPORTER_VERSION",
    "Sandbox",
    "cache_dir",
    "cli_main",
    "fetch_jars",
]

