"""What the sandbox writes for Kafka, the JMX exporter and Prometheus (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kbp_notebook import sandbox as sandbox_module
from kbp_notebook.errors import KbpError, KbpInputError
from kbp_notebook.sandbox import Sandbox, cli_main


def _props(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def _laid_out(tmp_path: Path, **kwargs: object) -> Sandbox:
    sb = Sandbox(**kwargs)  # type: ignore[arg-type]
    sb._workdir = tmp_path
    sb._layout()
    return sb


def test_three_brokers_form_a_combined_kraft_quorum(tmp_path: Path) -> None:
    sb = _laid_out(
        tmp_path, brokers=3, broker_config={"log.flush.interval.messages": 1, "num.partitions": 6}
    )
    props = {
        i: _props(tmp_path / f"broker-{i}" / "config" / "server.properties") for i in (1, 2, 3)
    }
    voters = props[1]["controller.quorum.voters"].split(",")
    assert [v.split("@")[0] for v in voters] == ["1", "2", "3"]
    for i in (1, 2, 3):
        p = props[i]
        assert p["node.id"] == str(i)
        assert p["process.roles"] == "broker,controller"
        assert p["controller.quorum.voters"] == props[1]["controller.quorum.voters"]
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"
        assert p["log.flush.interval.messages"] == "1"
        assert p["num.partitions"] == "6"  # broker_config overrides the defaults
        assert "SASL_PLAINTEXT" not in p["listeners"]
        assert p["log.dirs"].startswith(str(tmp_path / f"broker-{i}"))
    ports = [
        port
        for node in sb._nodes.values()
        for port in (node.port, node.controller_port, node.exporter_port)
    ]
    assert sb._prometheus is not None
    ports.append(sb._prometheus.port)
    assert len(set(ports)) == len(ports) == 10


def test_one_broker_uses_replication_factor_one(tmp_path: Path) -> None:
    _laid_out(tmp_path, brokers=1, prometheus=False)
    p = _props(tmp_path / "broker-1" / "config" / "server.properties")
    assert p["offsets.topic.replication.factor"] == "1"
    assert p["transaction.state.log.min.isr"] == "1"
    assert not (tmp_path / "prometheus").exists()


def test_scram_users_add_a_sasl_listener(tmp_path: Path) -> None:
    sb = _laid_out(tmp_path, brokers=1, scram_users={"alice": "s3cret"})
    p = _props(tmp_path / "broker-1" / "config" / "server.properties")
    sasl = sb._nodes[1].sasl_port
    assert f"SASL_PLAINTEXT://127.0.0.1:{sasl}" in p["listeners"].split(",")
    assert p["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule" in p["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    # Passwords go to kafka-storage at format time, never into the config files.
    assert "s3cret" not in (tmp_path / "broker-1" / "config" / "server.properties").read_text()


def test_prometheus_scrapes_every_exporter_each_second_with_a_broker_label(tmp_path: Path) -> None:
    sb = _laid_out(tmp_path, brokers=3)
    config = yaml.safe_load((tmp_path / "prometheus" / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "1s"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "kafka"
    seen = {sc["labels"]["broker"]: sc["targets"] for sc in job["static_configs"]}
    assert seen == {str(i): [f"127.0.0.1:{n.exporter_port}"] for i, n in sb._nodes.items()}


def test_reused_workdir_is_cleared_of_an_older_cluster(tmp_path: Path) -> None:
    old = tmp_path / "broker-1" / "data"
    old.mkdir(parents=True)
    (old / "meta.properties").write_text("cluster.id=old\n")
    _laid_out(tmp_path, brokers=1)
    assert not (old / "meta.properties").exists()


def test_exporter_rules_read_every_mbean_of_the_canonical_metrics() -> None:
    rules = yaml.safe_load(sandbox_module._asset("jmx-exporter.yaml").read_text())
    included = "\n".join(rules["includeObjectNames"])
    for mbean in [
        "type=LogFlushStats,name=LogFlushRateAndTimeMs",
        "type=ReplicaManager,name=*",
        "name=TotalTimeMs,request=Produce",
        "name=TotalTimeMs,request=FetchConsumer",
        "name=RequestQueueTimeMs,request=Produce",
        "name=RequestHandlerAvgIdlePercent",
        "name=NetworkProcessorAvgIdlePercent",
        "name=BytesInPerSec",
        "name=BytesOutPerSec",
        "name=MessagesInPerSec",
    ]:
        assert mbean in included
    assert rules["lowercaseOutputName"] is True


@pytest.mark.parametrize(
    "users",
    [{"bad,name": "pw"}, {"ok": "has space"}, {"ok": 'quote"d'}, {"": "pw"}, {"ok": "a]b"}],
)
def test_scram_credentials_that_kafka_storage_cannot_parse_are_refused(
    users: dict[str, str],
) -> None:
    with pytest.raises(KbpInputError) as info:
        Sandbox(scram_users=users)
    password = next(iter(users.values()))
    assert password not in str(info.value)


def test_only_one_or_three_brokers() -> None:
    with pytest.raises(KbpInputError, match="1 or 3"):
        Sandbox(brokers=2)


def test_addresses_need_a_running_sandbox() -> None:
    sb = Sandbox()
    with pytest.raises(KbpError, match=r"\.start\(\)"):
        _ = sb.bootstrap_servers
    assert sb.broker_ids == [1]
    assert "not running" in repr(sb)


def test_kafka_version_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KBP_KAFKA_VERSION", "4.0.1")
    assert sandbox_module._kafka_version() == "4.0.1"
    assert sandbox_module._kafka_version("4.2.0") == "4.2.0"
    pom = sandbox_module._pom("4.0.1")
    for artifact in ("kafka_2.13", "kafka-tools", "log4j-slf4j-impl"):
        assert f"<artifactId>{artifact}</artifactId>" in pom
    assert pom.count("<version>4.0.1</version>") == 2


@pytest.mark.parametrize("bad", ["3.9.1", "latest", "4.1"])
def test_unusable_kafka_versions_are_refused(bad: str) -> None:
    with pytest.raises(KbpInputError, match="KBP_KAFKA_VERSION"):
        sandbox_module._kafka_version(bad)


def test_properties_are_escaped() -> None:
    text = sandbox_module._render_properties({"a": True, "b": "x\\y\nz", "c": 3})
    assert text == "a=true\nb=x\\\\y\\nz\nc=3\n"


def test_cli_status_without_a_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.setenv("KBP_SANDBOX_STATE", str(tmp_path / "none.json"))
    assert cli_main(["status"]) == 1
    assert "no sandbox is up" in capsys.readouterr().out
    assert cli_main(["down"]) == 0


def test_cli_rejects_a_scram_user_without_password(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KBP_SANDBOX_STATE", str(tmp_path / "none.json"))
    with pytest.raises(KbpInputError, match="NAME:PASSWORD"):
        cli_main(["up", "--scram-user", "alice"])


def test_sandbox_cli_checks_its_options_and_reports_no_sandbox(tmp_path, monkeypatch, capsys):
    import pytest

    from kbp_notebook.errors import KbpInputError
    from kbp_notebook.sandbox import cli_main

    monkeypatch.setenv("KBP_SANDBOX_STATE", str(tmp_path / "state.json"))
    with pytest.raises(KbpInputError, match="--set 'novalue': expected KEY=VALUE"):
        cli_main(["up", "--set", "novalue"])
    with pytest.raises(KbpInputError, match="--scram-user 'alice': expected NAME:PASSWORD"):
        cli_main(["up", "--scram-user", "alice"])
    assert cli_main(["status"]) == 1
    assert cli_main(["down"]) == 0
    out = capsys.readouterr().out
    assert "no sandbox is up (start one" in out and out.rstrip().endswith("no sandbox is up.")
