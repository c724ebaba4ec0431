"""Client properties files, durations, secret hygiene, progress, samples, and the CLI."""

import io
import socket

import pandas as pd
import pytest

from kbp_notebook import Dataset, list_samples, load_sample, sample_path, write_dataset
from kbp_notebook.collect._kafka import public_config, redact, secret_values
from kbp_notebook.collect._progress import make_progress
from kbp_notebook.collect.cli import (
    collect_main,
    parse_client_properties,
    read_client_properties,
    samples_main,
)
from kbp_notebook.errors import KbpConnectionError, KbpInputError
from kbp_notebook.units import parse_duration_s

SCRAM_PROPERTIES = r"""
# client.properties as used with kafka-consumer-groups.sh --command-config
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
    username="alice" \
    password="p@ss w\"rd";
client.id = kbp-test
request.timeout.ms: 5000
"""


def test_scram_properties_map_to_kafka_python_settings():
    config = parse_client_properties(SCRAM_PROPERTIES)
    assert config == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "alice",
        "sasl_plain_password": 'p@ss w\\"rd',
        "client_id": "kbp-test",
        "request_timeout_ms": 5000,
    }


def test_client_properties_file_is_read_and_a_missing_one_named(tmp_path):
    path = tmp_path / "client.properties"
    path.write_text(SCRAM_PROPERTIES, encoding="utf-8")
    assert read_client_properties(path) == parse_client_properties(SCRAM_PROPERTIES)
    with pytest.raises(KbpInputError, match=r"command_config .*nope\.properties.*check the path"):
        read_client_properties(tmp_path / "nope.properties")


def test_plain_login_module_defaults_mechanism_to_plain():
    config = parse_client_properties(
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="u" password="p";\nsecurity.protocol=SASL_SSL\n'
        "ssl.truststore.type=PEM\nssl.truststore.location=/etc/ca.pem\n"
        "ssl.endpoint.identification.algorithm=\n"
    )
    assert config["sasl_mechanism"] == "PLAIN"
    assert config["ssl_cafile"] == "/etc/ca.pem"
    assert config["ssl_check_hostname"] is False


def test_jks_truststore_is_refused_without_leaking_values():
    text = "ssl.truststore.location=/secret/path.jks\nssl.truststore.password=hunter2\n"
    with pytest.raises(KbpInputError, match="PEM") as info:
        parse_client_properties(text)
    assert "hunter2" not in str(info.value)


def test_unsupported_login_module_is_refused():
    with pytest.raises(KbpInputError, match="ScramLoginModule"):
        parse_client_properties(
            "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer."
            "OAuthBearerLoginModule required;\n"
        )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5),
        ("500ms", 0.5),
        ("10m", 600),
        ("1h30m", 5400),
        ("2", 2),
        (2.5, 2.5),
        (pd.Timedelta("3s"), 3),
    ],
)
def test_durations(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "soon", "-5s", 0, "5 parsecs", True])
def test_bad_durations_name_the_option(bad):
    with pytest.raises(KbpInputError, match="every="):
        parse_duration_s(bad, name="every")


def test_public_config_keeps_no_secret():
    config = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "alice",
        "sasl_plain_password": "pw-123",
        "ssl_password": "key-pw",
        "ssl_cafile": "/ca.pem",
        "request_timeout_ms": 1000,
    }
    public = public_config(config)
    assert "pw-123" not in str(public) and "key-pw" not in str(public)
    assert public["security_protocol"] == "SASL_SSL" and public["ssl_cafile"] == "/ca.pem"
    assert redact("auth failed for pw-123 / key-pw", secret_values(config)) == (
        "auth failed for *** / ***"
    )


def test_text_progress_writes_a_line_per_interval_off_a_terminal():
    stream = io.StringIO()
    progress = make_progress(True, 3, stream=stream)
    progress.update(done=1, rows=10, total_lag=1234, status="")
    progress.update(done=2, rows=20, total_lag=None, status="unreachable")
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "kbp collect: 1/3 intervals, 10 rows, total lag 1,234",
        "kbp collect: 2/3 intervals, 20 rows, total lag - (unreachable)",
    ]


def test_disabled_progress_writes_nothing():
    stream = io.StringIO()
    progress = make_progress(False, 3, stream=stream)
    progress.update(done=1, rows=1, total_lag=0, status="")
    assert stream.getvalue() == ""


# -- samples -------------------------------------------------------------------------


def tiny_dataset(description):
    lag = pd.DataFrame(
        {
            "time": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"]),
            "cluster": "c",
            "group": "g",
            "topic": "t",
            "partition": 0,
            "committed_offset": [1, 4],
            "log_end_offset": [5, 6],
            "lag": [4, 2],
        }
    )
    return Dataset(lag=lag, meta={"description": description})


def test_samples_come_from_the_override_folder(tmp_path, monkeypatch, capsys):
    write_dataset(tiny_dataset("A tiny burst.\nMore text."), tmp_path / "tiny-burst")
    write_dataset(tiny_dataset("Another."), tmp_path / "another")
    (tmp_path / "not-a-dataset").mkdir()
    write_dataset(tiny_dataset("half recorded"), tmp_path / ".tiny-burst.recording")
    monkeypatch.setenv("KBP_SAMPLE_DATA", str(tmp_path))
    assert list_samples() == ["another", "tiny-burst"]
    assert sample_path("tiny-burst") == tmp_path / "tiny-burst"
    ds = load_sample("tiny-burst")
    assert list(ds.lag["lag"]) == [4, 2] and ds.meta["description"].startswith("A tiny")
    assert samples_main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["another     Another.", "tiny-burst  A tiny burst."]


def test_unknown_sample_lists_the_available_ones(tmp_path, monkeypatch):
    write_dataset(tiny_dataset("x"), tmp_path / "only-one")
    monkeypatch.setenv("KBP_SAMPLE_DATA", str(tmp_path))
    with pytest.raises(KbpInputError, match="available: only-one"):
        load_sample("nope")


def test_samples_main_fails_when_there_are_none(tmp_path, monkeypatch):
    monkeypatch.setenv("KBP_SAMPLE_DATA", str(tmp_path / "missing"))
    assert list_samples() == []
    assert samples_main([]) == 1


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_collector_on_a_closed_port_names_the_address():
    from kbp_notebook import LagCollector

    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(KbpConnectionError) as info:
        LagCollector(address, bootstrap_timeout_ms=1500, sasl_plain_password="pw-x")
    assert address in str(info.value)
    assert "pw-x" not in str(info.value)


def test_collect_cli_reports_unreadable_command_config(tmp_path):
    with pytest.raises(KbpInputError, match="command-config"):
        collect_main(
            [
                "--bootstrap-server",
                "127.0.0.1:1",
                "--out",
                str(tmp_path / "o"),
                "--command-config",
                str(tmp_path / "missing.properties"),
            ]
        )


def test_jupyter_progress_widget_tracks_the_recording(capsys):
    from kbp_notebook.collect._progress import _Widget

    widget = _Widget(4)
    widget.update(done=2, rows=20, total_lag=7, status="")
    assert widget.bar.value == 2 and widget.bar.max == 4
    assert widget.label.value == "2/4 intervals, 20 rows, total lag 7"
    widget.update(done=2, rows=20, total_lag=None, status="unreachable")
    assert widget.bar.bar_style == "warning"
    widget.close()
    assert widget.bar.bar_style == "success"


def test_ipywidgets_is_not_imported_by_the_collectors():
    import subprocess
    import sys

    code = (
        "import sys, kbp_notebook.collect.kafka_lag, kbp_notebook.collect.cli;"
        "print('ipywidgets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_collector_arguments_are_checked_without_a_broker():
    from kbp_notebook import LagCollector

    address = f"127.0.0.1:{free_port()}"  # nothing listens: any connection attempt would fail
    with pytest.raises(KbpInputError, match="Unrecognized configs"):
        LagCollector(address, connect=False, bogus_setting=1)
    with pytest.raises(KbpInputError, match="bootstrap_servers is empty"):
        LagCollector("", connect=False)
    collector = LagCollector(address, connect=False, bootstrap_timeout_ms=1500)
    assert "not connected" in repr(collector)
    with pytest.raises(KbpInputError, match="every"):
        collector.record("unused-folder", every="soon", progress=False)
    # the first request connects, and fails as the constructor would have
    with pytest.raises(KbpConnectionError) as info:
        collector.snapshot()
    assert address in str(info.value)


def test_kafka_errors_become_kbp_errors_that_say_what_to_check():
    import kafka.errors as kerr

    from kbp_notebook.collect._kafka import kafka_error_types, translate_kafka_error

    sasl = kerr.SaslAuthenticationFailedError("bad {x}")
    login = translate_kafka_error(sasl, "h:1", "connecting")
    assert isinstance(login, KbpConnectionError)
    assert str(login).startswith("Kafka at h:1 rejected the credentials while connecting (")
    assert "bad {x}" in str(login) and "sasl_mechanism" in str(login)
    denied = translate_kafka_error(kerr.GroupAuthorizationFailedError("no"), "h:1", "listing")
    assert "denied access while listing" in str(denied) and "DESCRIBE" in str(denied)
    down = translate_kafka_error(OSError("refused"), "h:1", "listing")
    assert str(down).startswith("Cannot reach Kafka at h:1 while listing (OSError: refused)")
    assert isinstance(translate_kafka_error(TypeError("x"), "h:1", "connecting"), KbpInputError)
    assert kafka_error_types("KafkaConnectionError", "NoSuchErrorClass") == (
        kerr.KafkaConnectionError,
    )
