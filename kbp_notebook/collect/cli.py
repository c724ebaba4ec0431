r"""``kbp collect`` and ``kbp samples``.

``kbp collect`` records consumer lag to a Dataset folder::

    kbp collect --bootstrap-server broker:9092 --group billing --group audit \
        --every 5s --duration 1h --out recordings/incident-42 \
        --command-config client.properties

``--command-config`` takes the same client properties file as Kafka's own
tools (``security.protocol``, ``sasl.mechanism``, ``sasl.jaas.config`` with a
SCRAM or PLAIN login module, PEM ``ssl.truststore.*``/``ssl.keystore.*``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kbp_notebook.errors import KbpInputError

__all__ = [
    "collect_main",
    "parse_client_properties",
    "read_client_properties",
    "read_properties",
    "samples_main",
]


def read_properties(text: str) -> dict[str, str]:
    """Parse Java ``.properties`` text (``key=value``, ``key: value``, ``#`` comments)."""
    props: dict[str, str] = {}
    logical: list[str] = []
    for raw in text.splitlines():
        line = raw.strip() if not logical else raw.lstrip()
        if not logical and (not line or line.startswith(("#", "!"))):
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            logical.append(line[:-1])
            continue
        logical.append(line)
        entry = "".join(logical)
        logical = []
        match = re.match(r"^((?:\\.|[^=:\s])+)\s*[=:\s]\s*(.*)$", entry)
        if match:
            key, value = match.group(1), match.group(2)
        else:
            key, value = entry, ""
        props[key.replace("\\", "")] = value.strip()
    return props


def _jaas_options(jaas: str) -> tuple[str, dict[str, str]]:
    module = jaas.strip().split()[0] if jaas.strip() else ""
    options = {
        m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
        for m in re.finditer(r'(\w+)\s*=\s*(?:"((?:\\.|[^"\\])*)"|([^\s;]+))', jaas)
    }
    return module, options


def parse_client_properties(text: str, *, source: str = "client properties") -> dict[str, Any]:
    """Map a Kafka client properties file to kafka-python keyword arguments.

    Parameters
    ----------
    text
        The file's content.
    source
        Where it came from (for error messages; never the content).

    Returns
    -------
    dict
        kafka-python settings (``security_protocol``, ``sasl_mechanism``,
        ``sasl_plain_username``, ``sasl_plain_password``, ``ssl_cafile``, ...).

    Raises
    ------
    KbpInputError
        A setting kafka-python cannot use (JKS stores, unknown login modules);
        the message names the key and what to do, never its value.
    """
    props = read_properties(text)
    config: dict[str, Any] = {}
    if "security.protocol" in props:
        config["security_protocol"] = props["security.protocol"].upper()
    if "sasl.mechanism" in props:
        config["sasl_mechanism"] = props["sasl.mechanism"].upper()
    if "client.id" in props:
        config["client_id"] = props["client.id"]
    for key, target in (("request.timeout.ms", "request_timeout_ms"),):
        if key in props:
            try:
                config[target] = int(props[key])
            except ValueError:
                raise KbpInputError(f"{source}: {key} must be a number of milliseconds.") from None
    if "sasl.jaas.config" in props:
        module, options = _jaas_options(props["sasl.jaas.config"])
        short = module.rsplit(".", 1)[-1]
        if short in ("ScramLoginModule", "PlainLoginModule"):
            if "username" not in options or "password" not in options:
                raise KbpInputError(
                    f'{source}: sasl.jaas.config ({short}) needs username="..." and '
                    f'password="..." options.',
                )
            config["sasl_plain_username"] = options["username"]
            config["sasl_plain_password"] = options["password"]
            if "sasl_mechanism" not in config:
                config["sasl_mechanism"] = (
                    "PLAIN" if short == "PlainLoginModule" else "SCRAM-SHA-512"
                )
        else:
            raise KbpInputError(
                f"{source}: sasl.jaas.config uses {short or 'an unknown login module'}; kbp "
                f"supports ScramLoginModule and PlainLoginModule (SCRAM-SHA-256/512, PLAIN).",
            )
    truststore_type = props.get("ssl.truststore.type", "").upper()
    if "ssl.truststore.location" in props:
        if truststore_type != "PEM":
            raise KbpInputError(
                f"{source}: ssl.truststore.location is a {truststore_type or 'JKS'} store, which "
                f"Python cannot read; export the CA as PEM (keytool -exportcert -rfc) and set "
                f"ssl.truststore.type=PEM, or use ssl.ca.location=<file.pem>.",
            )
        config["ssl_cafile"] = props["ssl.truststore.location"]
    if "ssl.ca.location" in props:
        config["ssl_cafile"] = props["ssl.ca.location"]
    keystore_type = props.get("ssl.keystore.type", "").upper()
    if "ssl.keystore.location" in props:
        if keystore_type != "PEM":
            raise KbpInputError(
                f"{source}: ssl.keystore.location is a {keystore_type or 'JKS'} store; convert "
                f"the client certificate and key to PEM and set ssl.keystore.type=PEM.",
            )
        config["ssl_certfile"] = props["ssl.keystore.location"]
    if "ssl.certificate.location" in props:
        config["ssl_certfile"] = props["ssl.certificate.location"]
    if "ssl.key.location" in props:
        config["ssl_keyfile"] = props["ssl.key.location"]
    if "ssl.key.password" in props:
        config["ssl_password"] = props["ssl.key.password"]
    if props.get("ssl.endpoint.identification.algorithm", None) == "":
        config["ssl_check_hostname"] = False
    return config


def read_client_properties(
    path: str | Path, *, option: str = "command_config"
) -> dict[str, Any]:
    """Read a client properties file (Kafka's ``--command-config``) as kafka-python settings.

    ``option`` names the setting the path came from, for error messages.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KbpInputError(
            f"Cannot read {option} {path} ({exc.strerror}); check the path.",
            path=str(path),
        ) from None
    return parse_client_properties(text, source=f"{option} {path}")


def _collect_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kbp collect",
        description="Record consumer lag (read-only) to a Dataset folder.",
    )
    parser.add_argument("--bootstrap-server", required=True, help="host:port[,host:port...]")
    parser.add_argument(
        "--group", action="append", default=None, help="group id (repeatable; default: all)"
    )
    parser.add_argument("--every", default="5s", help="sampling interval, e.g. 5s (default)")
    parser.add_argument("--duration", default=None, help="e.g. 10m; default: until Ctrl-C")
    parser.add_argument("--out", required=True, help="Dataset folder (resumed if it exists)")
    parser.add_argument(
        "--command-config", default=None, help="Kafka client properties file (SASL/SSL)"
    )
    parser.add_argument("--cluster", default="default", help="your name for the cluster")
    parser.add_argument(
        "--group-pattern",
        default=None,
        help="without --group: only groups whose id matches this regular expression",
    )
    parser.add_argument(
        "--skip-empty-groups",
        action="store_true",
        help="without --group: skip groups with no member (Empty/Dead); a group whose "
        "consumers all died is Empty, so use this only to hide abandoned groups",
    )
    parser.add_argument(
        "--remote-write",
        default=None,
        metavar="URL",
        help="also push every snapshot to a Prometheus-compatible store's remote-write "
        "endpoint, e.g. http://127.0.0.1:8428/api/v1/write",
    )
    parser.add_argument(
        "--remote-write-names",
        default="kafka_exporter",
        choices=["kafka_exporter", "kafka-lag-exporter", "kminion"],
        help="metric names of the pushed series (default: kafka_exporter's)",
    )
    parser.add_argument(
        "--max-groups",
        type=int,
        default=None,
        help="without --group: track at most this many groups (first by id)",
    )
    parser.add_argument("--no-progress", action="store_true", help="do not show progress")
    parser.add_argument(
        "--max-backoff", default="60s", help="longest wait between retries when unreachable"
    )
    parser.add_argument(
        "--time-lag",
        action="store_true",
        help="also read the record at each committed offset: exact lag in seconds",
    )
    return parser


def collect_main(argv: Sequence[str]) -> int:
    """Run ``kbp collect`` with ``argv`` (without the program name); return the exit code."""
    from kbp_notebook.collect.kafka_lag import LagCollector
    from kbp_notebook.collect.remote_write import RemoteWriter
    from kbp_notebook.units import parse_duration_s

    args = _collect_parser().parse_args(list(argv))
    config = (
        read_client_properties(args.command_config, option="--command-config")
        if args.command_config
        else {}
    )
    every_s = parse_duration_s(args.every, name="--every")
    duration_s = (
        None if args.duration is None else parse_duration_s(args.duration, name="--duration")
    )
    max_backoff_s = parse_duration_s(args.max_backoff, name="--max-backoff")
    with LagCollector(
        args.bootstrap_server,
        cluster=args.cluster,
        group_pattern=args.group_pattern,
        skip_empty_groups=args.skip_empty_groups,
        max_groups=args.max_groups,
        **config,
    ) as collector:
        collector.record(
            args.out,
            every=every_s,
            duration=duration_s,
            groups=args.group,
            progress=not args.no_progress,
            max_backoff_s=max_backoff_s,
            read_back=False,  # the folder may hold days of data; print counts only
            remote_write=(
                RemoteWriter(args.remote_write, scheme=args.remote_write_names)
                if args.remote_write
                else None
            ),
            time_lag=args.time_lag,
        )
        stats = collector.last_recording
    if stats is not None:
        print(
            f"kbp collect: wrote {stats.snapshots} snapshot(s), {stats.rows} rows to {args.out}"
            + (f"; {stats.failures} failed attempt(s), see events" if stats.failures else ""),
            file=sys.stderr,
        )
    return 0


def samples_main(argv: Sequence[str]) -> int:
    """Run ``kbp samples``: print the available sample recordings, one per line."""
    from kbp_notebook.collect.samples import list_samples, sample_description, samples_root

    parser = argparse.ArgumentParser(prog="kbp samples", description="List sample recordings.")
    parser.add_argument("--path", action="store_true", help="print each sample's folder too")
    args = parser.parse_args(list(argv))
    names = list_samples()
    if not names:
        print(
            f"No samples in {samples_root()} (set KBP_SAMPLE_DATA to another folder).",
            file=sys.stderr,
        )
        return 1
    width = max(len(name) for name in names)
    for name in names:
        extra = str(samples_root() / name) if args.path else sample_description(name)
        print(f"{name:<{width}}  {extra}".rstrip())
    return 0
