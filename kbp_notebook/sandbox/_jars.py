"""Maven resolution of the Kafka and JMX-exporter jars, the cache directory, Java checks, assets."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from kbp_notebook._cache import cache_dir
from kbp_notebook.errors import KbpError, KbpInputError

DEFAULT_KAFKA_VERSION = "4.1.2"
"""Kafka version used unless ``KBP_KAFKA_VERSION`` says otherwise."""

JMX_EXPORTER_VERSION = "1.0.1"
"""Version of ``io.prometheus.jmx:jmx_prometheus_javaagent``."""

# Kafka 4 logs through slf4j 1.7 and ships log4j-core, but its published POM has
# no slf4j binding: without this one the broker would log nothing at all.
_LOG4J_SLF4J_BINDING = ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.25.3")
_MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"

# --------------------------------------------------------------------------- jars


def _kafka_version(version: str | None = None) -> str:
    chosen = version or os.environ.get("KBP_KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
    if not re.fullmatch(r"\d+\.\d+\.\d+(-[A-Za-z0-9.]+)?", chosen):
        raise KbpInputError(
            f"Kafka version {chosen!r} is not of the form 4.1.2; fix KBP_KAFKA_VERSION.",
            version=chosen,
        )
    if int(chosen.split(".")[0]) < 4:
        raise KbpInputError(
            f"Kafka version {chosen} is too old: the sandbox runs KRaft-only Kafka 4.x or newer; "
            "fix KBP_KAFKA_VERSION.",
            version=chosen,
        )
    return chosen


def _pom(kafka_version: str) -> str:
    group, artifact, version = _LOG4J_SLF4J_BINDING
    deps = [
        ("org.apache.kafka", "kafka_2.13", kafka_version),
        ("org.apache.kafka", "kafka-tools", kafka_version),
        (group, artifact, version),
    ]
    body = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>kbp-notebook</groupId><artifactId>sandbox-jars</artifactId>"
        "<version>1</version>\n"
        "  <dependencies>\n"
        f"{body}\n"
        "  </dependencies>\n"
        "</project>\n"
    )


def _run_mvn(args: Sequence[str], *, cwd: Path, what: str) -> None:
    mvn = os.environ.get("KBP_MVN") or shutil.which("mvn")
    if mvn is None:
        raise KbpError(
            f"cannot fetch {what}: 'mvn' is not on PATH; install Maven "
            "(apt-get install maven) or set KBP_MVN.",
            artifact=what,
        )
    try:
        proc = subprocess.run(
            [mvn, "-B", "-q", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise KbpError(
            f"mvn took more than 15 minutes to fetch {what}; check that Maven Central "
            "(repo.maven.apache.org) is reachable.",
            artifact=what,
        ) from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()
        errors = [line for line in output if "ERROR" in line] or output
        detail = "\n".join(errors[-8:])
        raise KbpError(
            f"mvn could not fetch {what} (exit {proc.returncode}); check that Maven Central "
            f"is reachable and the version exists (KBP_KAFKA_VERSION).\n{detail}",
            artifact=what,
        )


def _jars_root(version: str) -> Path:
    return cache_dir() / "jars" / f"kafka-{version}_jmx-{JMX_EXPORTER_VERSION}"


def fetch_jars(*, kafka_version: str | None = None) -> Path:
    """Resolve the Kafka, kafka-tools and JMX exporter jars with ``mvn``, once.

    The result is cached under :func:`cache_dir`; later calls return at once.
    Only Maven Central has to be reachable (``~/.m2`` may be empty).

    Parameters
    ----------
    kafka_version
        Kafka version; default ``$KBP_KAFKA_VERSION`` or :data:`DEFAULT_KAFKA_VERSION`.

    Returns
    -------
    Path
        A directory with ``lib/*.jar`` (the broker and tools class path) and
        ``agent/jmx_prometheus_javaagent.jar``.

    Raises
    ------
    KbpError
        If ``mvn`` is missing or cannot resolve an artifact (the message names it).
    """
    version = _kafka_version(kafka_version)
    root = _jars_root(version)
    if (root / ".complete").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    lock_path = root.parent / f".{root.name}.lock"
    with open(lock_path, "w") as lock:
        # Two test sessions may fetch at once: one does the work, the other waits.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / ".complete").exists():
            return root
        staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        try:
            (staging / "pom.xml").write_text(_pom(version))
            _run_mvn(
                [
                    f"{_MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
                    f"-DoutputDirectory={staging / 'lib'}",
                    "-DincludeScope=runtime",
                ],
                cwd=staging,
                what=f"org.apache.kafka:kafka_2.13:{version} and "
                f"org.apache.kafka:kafka-tools:{version} (with their dependencies)",
            )
            agent = f"io.prometheus.jmx:jmx_prometheus_javaagent:{JMX_EXPORTER_VERSION}"
            _run_mvn(
                [
                    f"{_MAVEN_DEPENDENCY_PLUGIN}:copy",
                    f"-Dartifact={agent}",
                    f"-DoutputDirectory={staging / 'agent'}",
                    "-Dmdep.stripVersion=true",
                ],
                cwd=staging,
                what=agent,
            )
            if not (staging / "lib" / f"kafka_2.13-{version}.jar").exists():
                raise KbpError(
                    f"mvn finished but kafka_2.13-{version}.jar is missing from {staging}; "
                    "delete that directory and retry.",
                    artifact=f"org.apache.kafka:kafka_2.13:{version}",
                )
            (staging / ".complete").write_text(version + "\n")
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return root


def _java() -> str:
    explicit = os.environ.get("KBP_JAVA")
    if explicit:
        return explicit
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise KbpError(
            "no 'java' found: Kafka 4 needs Java 17 or newer; install openjdk-17-jre-headless "
            "or set KBP_JAVA / JAVA_HOME."
        )
    return found


_JAVA_CHECKED: dict[str, int] = {}


def _check_java(java: str) -> None:
    if java in _JAVA_CHECKED:
        return
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        ).stderr
    except OSError as exc:
        raise KbpError(f"cannot run {java!r}: {exc}; set KBP_JAVA to a Java 17+ binary.") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):
        major = int(match.group(2))
    if major < 17:
        raise KbpError(
            f"{java} is Java {major or 'unknown'}; Kafka 4 brokers need Java 17 or newer: "
            "set KBP_JAVA or JAVA_HOME to one."
        )
    _JAVA_CHECKED[java] = major


def _asset(name: str) -> Path:
    path = Path(str(resources.files("kbp_notebook") / "sandbox_assets" / name))
    if not path.exists():
        raise KbpError(f"sandbox asset {name} is missing from the kbp_notebook installation.")
    return path


# ---------------------------------------------------------------------- processes
