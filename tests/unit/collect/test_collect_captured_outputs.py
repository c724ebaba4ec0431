"""parse_consumer_groups on real kafka-consumer-groups outputs captured from the sandbox.

tests/data/consumer_groups/capture.py produced these files from Kafka 4.1's own
tool; expected.json holds the offsets that script set up (not parser output).
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from kbp_notebook import parse_consumer_groups
from kbp_notebook.errors import KbpInputError

DATA = Path(__file__).resolve().parents[2] / "data" / "consumer_groups"
EXPECTED = json.loads((DATA / "expected.json").read_text())
T0 = "2026-01-01T00:00:00Z"


def read(name):
    return (DATA / name).read_text(encoding="utf-8")


def check_billing(lag):
    billing = lag[lag["group"] == "billing"].sort_values("partition")
    assert list(billing["topic"]) == ["orders"] * 3
    assert list(billing["committed_offset"]) == EXPECTED["billing"]["orders"]
    assert list(billing["log_end_offset"]) == EXPECTED["log_end_offset"]["orders"]
    assert list(billing["lag"]) == [40, 70, 100]
    assert billing[["consumer_id", "host", "client_id"]].isna().all().all()


def check_audit_trail(lag):
    audit = lag[lag["group"] == "audit trail"].sort_values("partition")
    assert list(audit["log_end_offset"]) == EXPECTED["log_end_offset"]["audit"]
    assert audit["committed_offset"].isna().all() and audit["lag"].isna().all()
    assert set(audit["client_id"]) == {EXPECTED["audit trail"]["client_id"]}
    assert set(audit["host"]) == {EXPECTED["audit trail"]["host"]}
    assert audit["consumer_id"].str.startswith("audit app-").all()  # id with a space


@pytest.mark.parametrize("name", ["describe_all_groups.txt", "describe_all_groups_verbose.txt"])
def test_all_groups_outputs(name):
    lag = parse_consumer_groups(read(name), time=T0, cluster="sandbox")
    assert set(lag["group"]) == {"billing", "audit trail", "payments"}
    assert len(lag) == 8
    check_billing(lag)
    check_audit_trail(lag)
    payments = lag[lag["group"] == "payments"].set_index("partition")
    assert payments.loc[0, "committed_offset"] == EXPECTED["payments"]["orders_0_committed"]
    assert payments.loc[0, "lag"] == 40 - 33
    assert payments["committed_offset"].isna().sum() == 2
    assert set(payments["client_id"]) == {"payments-1"}


def test_plain_and_verbose_agree():
    plain = parse_consumer_groups(read("describe_all_groups.txt"), time=T0)
    verbose = parse_consumer_groups(read("describe_all_groups_verbose.txt"), time=T0)
    pd.testing.assert_frame_equal(plain, verbose)


def test_one_group_without_active_members():
    lag = parse_consumer_groups(read("describe_group_no_active_members.txt"), time=T0)
    assert set(lag["group"]) == {"billing"}
    check_billing(lag)


def test_several_groups():
    lag = parse_consumer_groups(read("describe_several_groups.txt"), time=T0)
    assert set(lag["group"]) == {"billing", "audit trail"}
    check_billing(lag)
    check_audit_trail(lag)


def test_nonexistent_group_output_has_no_rows():
    assert parse_consumer_groups(read("describe_nonexistent_group.txt"), time=T0).empty


def test_repeated_runs_log_becomes_a_time_series():
    lag = parse_consumer_groups(read("repeated_runs.log"))
    times = sorted(lag["time"].unique())
    assert len(times) == 3
    assert times == sorted(set(times))
    first_partition = lag[lag["partition"] == 0].sort_values("time")
    assert list(first_partition["log_end_offset"]) == EXPECTED["repeated_runs_orders_0_log_end"]
    assert list(first_partition["lag"]) == EXPECTED["repeated_runs_orders_0_log_end"]


@pytest.mark.parametrize("name", ["describe_members.txt", "describe_state.txt"])
def test_members_and_state_layouts_are_refused_with_advice(name):
    with pytest.raises(KbpInputError, match="--members or --state") as info:
        parse_consumer_groups(read(name), time=T0)
    assert info.value.line == 2


def test_a_corrupted_line_in_real_output_is_reported():
    lines = read("describe_all_groups.txt").splitlines()
    lines[3] = lines[3][:40] + "#garbage#" + lines[3][49:]
    with pytest.raises(KbpInputError) as info:
        parse_consumer_groups("\n".join(lines), time=T0)
    assert info.value.line == 4
    assert "#garbage#" in str(info.value)
