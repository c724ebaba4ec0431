# ruff: noqa: E501
"""parse_consumer_groups on hand-written layouts (real captured outputs: test_collect_captured)."""

import pandas as pd
import pytest

from kbp_notebook import parse_consumer_groups
from kbp_notebook.errors import KbpInputError

T0 = "2026-01-01T00:00:00Z"

# Kafka 2.x / 3.x layout, with stderr notices mixed in (2>&1).
KAFKA_3 = """
Consumer group 'idle' has no active members.

GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                                 HOST            CLIENT-ID
idle            orders          0          90              100             10              -                                           -               -
idle            orders          1          -               7               -               -                                           -               -

GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                                 HOST            CLIENT-ID
busy            orders          0          100             100             0               consumer-1-3f1c2a9e-7d4b-4e55-9a51-0c6a       /10.0.0.7       consumer-1
busy            -               -          -               -               -               consumer-2-aa                               /10.0.0.8       consumer-2
Error: Consumer group 'ghost' does not exist.
"""

# Kafka 4.x --verbose adds LEADER-EPOCH; group and client ids with spaces; long values.
KAFKA_4_VERBOSE = """
GROUP                TOPIC           PARTITION  LEADER-EPOCH  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID                   HOST            CLIENT-ID
team billing v2      payments        0          3             5               12              7               member 1                      /127.0.0.1      billing app
team billing v2      payments        1          -             -               4               -               -                             -               -
"""


def test_kafka3_layout_values_notices_and_members_without_partitions():
    lag = parse_consumer_groups(KAFKA_3, time=T0, cluster="prod")
    assert len(lag) == 3  # the member without partitions has no row
    assert set(lag["cluster"]) == {"prod"}
    assert (lag["time"] == pd.Timestamp(T0)).all()
    idle = lag[lag["group"] == "idle"].set_index("partition")
    assert idle.loc[0, "committed_offset"] == 90
    assert idle.loc[0, "log_end_offset"] == 100
    assert idle.loc[0, "lag"] == 10
    assert pd.isna(idle.loc[1, "committed_offset"]) and pd.isna(idle.loc[1, "lag"])
    assert idle.loc[1, "log_end_offset"] == 7
    assert pd.isna(idle.loc[0, "consumer_id"]) and pd.isna(idle.loc[0, "host"])
    busy = lag[lag["group"] == "busy"].iloc[0]
    assert busy["consumer_id"] == "consumer-1-3f1c2a9e-7d4b-4e55-9a51-0c6a"
    assert busy["host"] == "/10.0.0.7"
    assert busy["client_id"] == "consumer-1"


def test_kafka4_verbose_with_spaces_is_cut_at_header_positions():
    lag = parse_consumer_groups(KAFKA_4_VERBOSE, time=T0)
    assert list(lag["group"].unique()) == ["team billing v2"]
    first = lag[lag["partition"] == 0].iloc[0]
    assert first["committed_offset"] == 5 and first["log_end_offset"] == 12
    assert first["lag"] == 7
    assert first["consumer_id"] == "member 1"
    assert first["client_id"] == "billing app"
    assert "leader_epoch" not in lag.columns


def test_repeated_runs_with_timestamp_lines_make_a_time_series():
    block = """GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
g     t     0         {c}             {e}             {l}  -           -    -
"""
    text = (
        "2026-03-01T10:00:00+01:00\n"
        + block.format(c=1, e=5, l=4)
        + "Sun Mar  1 09:00:30 UTC 2026\n"
        + block.format(c=2, e=9, l=7)
        + "Sun, 01 Mar 2026 09:01:00 +0000\n"
        + block.format(c=3, e=9, l=6)
        + "Sun Mar  1 10:01:30 CET 2026\n"
        + block.format(c=9, e=9, l=0)
    )
    lag = parse_consumer_groups(text)
    assert list(lag["time"]) == [
        pd.Timestamp("2026-03-01T09:00:00Z"),
        pd.Timestamp("2026-03-01T09:00:30Z"),
        pd.Timestamp("2026-03-01T09:01:00Z"),
        pd.Timestamp("2026-03-01T09:01:30Z"),
    ]
    assert list(lag["lag"]) == [4, 7, 6, 0]


def test_rows_before_the_first_timestamp_take_the_time_argument():
    text = KAFKA_4_VERBOSE + "\n2026-01-01T00:05:00Z\n" + KAFKA_4_VERBOSE
    lag = parse_consumer_groups(text, time=T0)
    assert sorted(lag["time"].unique()) == [pd.Timestamp(T0), pd.Timestamp("2026-01-01T00:05Z")]
    assert len(lag) == 4


def test_default_time_is_now_in_utc():
    before = pd.Timestamp.now(tz="UTC")
    lag = parse_consumer_groups(KAFKA_4_VERBOSE)
    assert before <= lag["time"].iloc[0] <= pd.Timestamp.now(tz="UTC")
    assert str(lag["time"].dt.tz) == "UTC"


def test_java_log_lines_and_rebalancing_notice_are_skipped():
    text = (
        "[2026-01-01 00:00:00,123] WARN [AdminClient clientId=x] Connection refused "
        "(org.apache.kafka.clients.NetworkClient)\n"
        "SLF4J: Failed to load class\n"
        "Warning: Consumer group 'busy' is rebalancing.\n" + KAFKA_3
    )
    assert len(parse_consumer_groups(text, time=T0)) == 3


def test_unparseable_line_names_its_number_and_shows_it():
    text = KAFKA_4_VERBOSE + "this is not kafka output\n"
    with pytest.raises(KbpInputError) as info:
        parse_consumer_groups(text, time=T0)
    assert "line 5" in str(info.value)
    assert "this is not kafka output" in str(info.value)
    assert info.value.line == 5


def test_row_without_header_is_rejected():
    with pytest.raises(KbpInputError, match="line 1"):
        parse_consumer_groups("g t 0 1 2 1 - - -\n", time=T0)


def test_non_numeric_offset_is_rejected_with_line_number():
    bad = KAFKA_3.replace(
        "idle            orders          0          90 ",
        "idle            orders          0          9x ",
    )
    with pytest.raises(KbpInputError) as info:
        parse_consumer_groups(bad, time=T0)
    assert "line 5" in str(info.value) and "9x" in str(info.value)


def test_inconsistent_lag_is_rejected():
    bad = KAFKA_3.replace("100             10 ", "100             11 ")
    with pytest.raises(KbpInputError, match="LAG 11"):
        parse_consumer_groups(bad, time=T0)


def test_repeated_run_without_timestamp_is_rejected():
    with pytest.raises(KbpInputError, match="timestamp line"):
        parse_consumer_groups(KAFKA_3 + KAFKA_3, time=T0)


def test_members_layout_is_rejected_with_advice():
    members = (
        "GROUP  CONSUMER-ID  HOST  CLIENT-ID  #PARTITIONS\ng      c-1          /h    c          1\n"
    )
    with pytest.raises(KbpInputError, match="--members or --state"):
        parse_consumer_groups(members, time=T0)


def test_ambiguous_zone_abbreviation_is_rejected():
    with pytest.raises(KbpInputError, match="date -Is"):
        parse_consumer_groups("Sun Mar  1 10:01:30 XYZT 2026\n" + KAFKA_3)


def test_old_layout_without_group_column_needs_group_argument():
    old = (
        "TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID\n"
        "t      0          1               3               2    -            -     -\n"
    )
    with pytest.raises(KbpInputError, match="group="):
        parse_consumer_groups(old, time=T0)
    lag = parse_consumer_groups(old, time=T0, group="legacy")
    assert list(lag["group"]) == ["legacy"] and list(lag["lag"]) == [2]


def test_group_named_like_a_notice_word_is_data():
    text = (
        "GROUP  TOPIC  PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST  CLIENT-ID\n"
        "info-service  t  0  1  3  2  -  -  -\n"
    )
    lag = parse_consumer_groups(text, time=T0)
    assert list(lag["group"]) == ["info-service"]


def test_empty_text_gives_an_empty_valid_frame():
    lag = parse_consumer_groups("\n\n", time=T0)
    assert lag.empty and "committed_offset" in lag.columns


def test_non_text_input_is_rejected():
    with pytest.raises(KbpInputError, match="open"):
        parse_consumer_groups(b"bytes")  # type: ignore[arg-type]
