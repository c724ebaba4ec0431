import numpy as np
import pandas as pd
import pytest

from kbp_notebook.analysis import diagnosis
from kbp_notebook.analysis.diagnosis import SEVERITIES, Diagnosis, Signal, diagnose
from kbp_notebook.collect import load_sample
from kbp_notebook.datasets import make_lag
from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import Dataset

T0 = pd.Timestamp("2026-01-01T00:00:00Z")
N = 120  # 10 minutes of 5-second snapshots


def times(n=N, step_s=5.0):
    return T0 + pd.to_timedelta(np.arange(n) * step_s, unit="s")


def metric(name, entity, values, step_s=5.0):
    values = np.asarray(values, dtype="float64")
    return pd.DataFrame(
        {
            "time": times(len(values), step_s),
            "cluster": "test",
            "entity": entity,
            "metric": name,
            "value": values,
        }
    )


def healthy_lag(**options):
    settings = dict(partitions=4, n=N, produce_rate=100, consume_rate=130, noise=5, owners=2)
    settings.update(options)
    return make_lag(**settings)


def growing_lag(**options):
    settings = dict(partitions=4, n=N, produce_rate=110, consume_rate=100, noise=20, seed=1)
    settings.update(options)
    return make_lag(**settings)


def recommendations_text(result):
    return " | ".join(result.recommendations["recommendation"].astype(str))


def becauses(result):
    return " | ".join(result.recommendations["because"].astype(str))


# ---------------------------------------------------------------- shape


def test_result_shape_and_every_signal_reported():
    result = diagnose(Dataset(lag=healthy_lag()))
    assert isinstance(result, Diagnosis)
    assert list(result.findings.columns) == [
        "signal",
        "severity",
        "evidence",
        "time_start",
        "value",
        "threshold",
    ]
    assert result.findings is result.table
    assert list(result.recommendations.columns) == ["recommendation", "because", "detail"]
    signals = set(result.findings["signal"])
    assert signals == {
        "lag_episode",
        "broker_latency_at_onset",
        "lag_growing",
        "consumers_slower_than_producers",
        "under_replicated_partitions",
        "disk_usage_high",
        "producer_request_latency_up",
        "producer_queue_time_up",
        "flush_latency_correlated_with_lag",
        "request_handler_idle_low",
        "network_processor_idle_low",
        "consumer_count",
        "partition_skew",
        "retention_risk",
    }
    assert signals == set(Signal)  # one owner of the names
    assert set(result.findings["severity"]) <= set(SEVERITIES)
    ranks = result.findings["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    assert ranks.is_monotonic_increasing  # worst first
    assert str(result.findings["time_start"].dtype) == "datetime64[ns, UTC]"


def test_every_signal_is_in_the_documented_table():
    doc = diagnosis.__doc__ or ""
    missing = [str(s) for s in Signal if f"``{s}``" not in doc]
    assert not missing


def test_signals_without_data_say_so():
    result = diagnose(Dataset(lag=healthy_lag()))
    expectations = {
        "under_replicated_partitions": "no under_replicated_partitions recorded",
        "disk_usage_high": "no log_dir_used_bytes recorded",
        "producer_request_latency_up": "no producer_request_latency_avg_ms recorded",
        "producer_queue_time_up": "no producer_record_queue_time_avg_ms recorded",
        "flush_latency_correlated_with_lag": "no log_flush_time_ms_p99 recorded",
        "request_handler_idle_low": "no request_handler_idle_ratio recorded",
        "network_processor_idle_low": "no network_processor_idle_ratio recorded",
        "retention_risk": "no log_start_offset recorded",
    }
    for signal, text in expectations.items():
        row = result.finding(signal)
        assert row["severity"] == "info", signal
        assert text in row["evidence"], signal


def test_healthy_recording_needs_no_change():
    result = diagnose(Dataset(lag=healthy_lag()))
    assert not result.findings["severity"].isin(["critical", "warning"]).any()
    assert result.finding("lag_growing")["severity"] == "ok"
    assert result.finding("consumers_slower_than_producers")["severity"] == "ok"
    assert recommendations_text(result) == "No change needed"
    assert result.summary_lines()[0].startswith("No warning or critical finding")
    with pytest.raises(KbpInputError, match="no finding named"):
        result.finding("nope")


# ---------------------------------------------------------------- consumers and lag


@pytest.mark.parametrize("seed", range(6))
def test_caught_up_group_with_noisy_rates_is_not_behind(seed):
    # caught up: consume rate equals produce rate up to commit jitter, lag a few messages
    result = diagnose(Dataset(lag=healthy_lag(seed=seed)))
    row = result.finding("consumers_slower_than_producers")
    assert row["severity"] == "ok", row["evidence"]
    assert not result.findings["severity"].isin(["critical", "warning"]).any()


def test_growing_lag_with_one_consumer_per_partition_says_add_partitions():
    result = diagnose(Dataset(lag=growing_lag(owners=4)))
    growing = result.finding("lag_growing")
    assert growing["severity"] == "warning"
    assert "grows 40" in growing["evidence"]  # 4 partitions x 10 msg/s
    assert growing["value"] == pytest.approx(40, rel=0.05)
    slower = result.finding("consumers_slower_than_producers")
    assert slower["severity"] == "critical"
    assert "never drains" in slower["evidence"]
    assert slower["value"] == pytest.approx(400 / 440, rel=0.02)
    consumers = result.finding("consumer_count")
    assert "already has 4 consumer(s) for 4 partition(s)" in consumers["evidence"]
    recs = recommendations_text(result)
    assert "Add partitions to the topic(s) of group 'orders-consumer'" in recs
    assert "Add consumers" not in recs
    assert "flow control" in recs
    assert result.summary_lines()[0].startswith("Top finding (critical): group 'orders-consumer'")
    add_partitions = result.recommendations[
        result.recommendations["recommendation"].str.startswith("Add partitions")
    ].iloc[0]
    assert "consumer_count" in add_partitions["because"]
    assert "consumer_count" in add_partitions["because"]
    episode = result.finding("lag_episode")
    assert episode["severity"] == "critical"  # not over


def test_growing_lag_with_fewer_consumers_says_add_consumers():
    result = diagnose(Dataset(lag=growing_lag(owners=2)))
    assert "has 2 consumer(s) for 4 partition(s)" in result.finding("consumer_count")["evidence"]
    recs = recommendations_text(result)
    assert "Add consumers to group 'orders-consumer' (up to 4)" in recs
    assert "Add partitions" not in recs
    assert "flow control" not in recs


@pytest.mark.parametrize("owners", [1, 2, 3, 4, 6])
def test_advice_never_contradicts_the_consumer_count(owners):
    result = diagnose(Dataset(lag=growing_lag(owners=owners)))
    consumers = min(owners, 4)
    recs = recommendations_text(result)
    assert result.finding("consumer_count")["value"] == consumers
    if consumers >= 4:
        assert "Add consumers" not in recs and "Add partitions" in recs
    else:
        assert "Add consumers" in recs and "Add partitions" not in recs


def test_scaling_advice_only_for_the_group_that_is_behind():
    slow = growing_lag(owners=4, groups=("slow-group",))
    fast = healthy_lag(owners=2, groups=("fast-group",), seed=3)
    result = diagnose(Dataset(lag=pd.concat([slow, fast], ignore_index=True)))
    recs = recommendations_text(result)
    assert "Add partitions to the topic(s) of group 'slow-group'" in recs
    assert "fast-group" not in recs
    rows = result.findings[result.findings["signal"] == "consumer_count"]
    assert len(rows) == 2  # one finding per group
    fast_row = rows[rows["evidence"].str.contains("fast-group")].iloc[0]
    assert fast_row["severity"] == "info" and "2 more could share" in fast_row["evidence"]


def test_many_groups_are_summarised_except_those_behind():
    fine = healthy_lag(owners=2, groups=tuple(f"app-{i}" for i in range(12)), partitions=2)
    slow = growing_lag(owners=4, groups=("slow-group",))
    result = diagnose(Dataset(lag=pd.concat([fine, slow], ignore_index=True)))
    rows = result.findings[result.findings["signal"] == "consumer_count"]
    assert len(rows) == 2
    assert rows["evidence"].str.contains("12 other group\\(s\\) are not behind").any()
    assert rows["evidence"].str.contains("slow-group").any()
    assert "Add partitions to the topic(s) of group 'slow-group'" in recommendations_text(result)


def test_unknown_membership_is_said_and_advice_is_conditional():
    result = diagnose(Dataset(lag=growing_lag()))
    row = result.finding("consumer_count")
    assert row["severity"] == "info" and "no consumer_id recorded" in row["evidence"]
    recs = recommendations_text(result)
    assert "Check the group's member count" in recs
    assert "Add consumers to" not in recs and "Add partitions to" not in recs


def test_group_with_no_active_member():
    result = diagnose(Dataset(lag=growing_lag(owners="none")))
    row = result.finding("consumer_count")
    assert row["severity"] == "warning"
    assert "no active member" in row["evidence"]
    assert "Start consumers for group 'orders-consumer'" in recommendations_text(result)


def test_one_hot_partition_is_skew():
    lag = growing_lag(owners=4, skew=[3.0, 1.0, 1.0, 1.0])
    result = diagnose(Dataset(lag=lag))
    skew = result.finding("partition_skew")
    assert skew["severity"] == "critical"  # the episode is not over
    # partition 0 grows 230 msg/s, the others 10 msg/s each
    assert "partition(s) 0 hold" in skew["evidence"]
    assert "3x the median" in skew["evidence"]
    assert "Re-key the hot key or add partitions" in recommendations_text(result)
    assert "Add consumers" not in recommendations_text(result)
    even = diagnose(Dataset(lag=growing_lag(owners=4)))
    assert even.finding("partition_skew")["severity"] == "ok"
    assert "Re-key" not in recommendations_text(even)


def test_lag_episode_inside_the_recording_is_reported():
    # healthy 2 min, consumers slow 3 min (lag +40 msg/s over 4 partitions), then fast again
    consume = [(0, 110), (120, 80), (300, 200)]
    resolved = growing_lag(n=160, produce_rate=110, consume_rate=consume, noise=5, owners=4)
    result = diagnose(Dataset(lag=resolved))
    row = result.finding("lag_episode")
    assert row["severity"] == "warning"
    assert "back at its usual lag" in row["evidence"]
    assert "peaked at 21,5" in row["evidence"] or "peaked at 21,6" in row["evidence"]
    assert -15 <= (row["time_start"] - (T0 + pd.Timedelta(seconds=120))).total_seconds() <= 30
    assert result.finding("consumer_slowdown")["severity"] == "warning"
    assert "Find what slowed the consumers" in recommendations_text(result)
    assert result.summary_lines()[0].startswith("Top finding (warning)")
    # the same fall without the recovery: the episode is not over
    stuck = growing_lag(
        n=160,
        produce_rate=110,
        consume_rate=[(0, 110), (120, 80), (300, 80)],
        noise=5,
        owners=2,
    )
    high = diagnose(Dataset(lag=stuck))
    assert high.finding("lag_episode")["severity"] == "critical"
    assert "still behind" in high.finding("lag_episode")["evidence"]
    assert "Add consumers to group 'orders-consumer' (up to 4)" in recommendations_text(high)


def test_recorded_sample_slow_consumer_then_scale_out():
    dataset = load_sample("slow-consumer-then-scale-out")
    events = dataset.events.set_index("kind")["time"]
    result = diagnose(dataset)
    row = result.finding("lag_episode")
    # The recording's ground truth: consumers slowed at `slowdown_start`, lag grew until
    # consumers were added at `consumers_added`, then drained.
    assert "back at its usual lag" in row["evidence"]
    slowdown, added = events["slowdown_start"], events["consumers_added"]
    assert slowdown <= row["time_start"] <= slowdown + pd.Timedelta("30s")
    peak = pd.Timestamp(
        row["evidence"].split(" messages at ")[1].split(" UTC")[0], tz="UTC"
    ).replace(year=added.year, month=added.month, day=added.day)
    assert abs((peak - added).total_seconds()) <= 10
    assert result.finding("consumer_slowdown")["severity"] == "warning"
    assert result.finding("under_replicated_partitions")["severity"] == "ok"
    assert "Find what slowed the consumers of 'orders-enricher'" in recommendations_text(result)
    assert "Add consumers" not in recommendations_text(result)


def test_too_little_lag_data_is_information_not_an_error():
    lag = growing_lag(n=2)
    result = diagnose(Dataset(lag=lag))
    growing = result.finding("lag_growing")
    assert growing["severity"] == "info"
    assert "sample" in growing["evidence"]


# ---------------------------------------------------------------- retention


def test_lag_approaching_retention():
    # 4 partitions each falling behind 10 msg/s, with 20,000 messages retained per partition.
    result = diagnose(Dataset(lag=growing_lag(owners=2, retention_msgs=20_000)))
    risk = result.finding("retention_risk")
    assert risk["severity"] == "critical"
    assert "falls behind the log start" in risk["evidence"]
    assert risk["value"] < 3600
    assert "Raise retention" in recommendations_text(result)
    roomy = diagnose(Dataset(lag=growing_lag(owners=2, retention_msgs=10**9)))
    assert roomy.finding("retention_risk")["severity"] == "ok"
    assert "Raise retention" not in recommendations_text(roomy)


def test_committed_offset_behind_log_start_is_data_loss():
    lag = growing_lag(owners=2, retention_msgs=20_000)
    last = lag["time"] == lag["time"].max()
    lag.loc[last, "log_start_offset"] = lag.loc[last, "committed_offset"] + 5
    result = diagnose(Dataset(lag=lag))
    risk = result.finding("retention_risk")
    assert risk["severity"] == "critical"
    assert "deleted before they were consumed" in risk["evidence"]


# ---------------------------------------------------------------- broker and disk


def test_under_replicated_partitions():
    values = np.zeros(N)
    values[60:80] = 3
    metrics = pd.concat(
        [
            metric("under_replicated_partitions", "broker-1", np.zeros(N)),
            metric("under_replicated_partitions", "broker-2", values),
        ]
    )
    result = diagnose(Dataset(lag=healthy_lag(), metrics=metrics))
    row = result.finding("under_replicated_partitions")
    assert row["severity"] == "critical"
    assert row["value"] == 3
    assert row["time_start"] == T0 + pd.Timedelta(seconds=300)
    assert "broker-2" in row["evidence"] and "00:05:00 UTC" in row["evidence"]
    assert "Restore replication" in recommendations_text(result)
    calm = diagnose(
        Dataset(
            lag=healthy_lag(),
            metrics=metric("under_replicated_partitions", "broker-1", np.zeros(N)),
        )
    )
    assert calm.finding("under_replicated_partitions")["severity"] == "ok"


@pytest.mark.parametrize(
    ("used_share", "severity"), [(0.95, "critical"), (0.85, "warning"), (0.5, "ok")]
)
def test_disk_usage(used_share, severity):
    total = 100 * 2**30
    used = np.linspace(0.4, used_share, N) * total
    metrics = pd.concat(
        [
            metric("log_dir_used_bytes", "logdir:1:/var/kafka", used),
            metric("log_dir_free_bytes", "logdir:1:/var/kafka", total - used),
        ]
    )
    result = diagnose(Dataset(lag=healthy_lag(), metrics=metrics))
    row = result.finding("disk_usage_high")
    assert row["severity"] == severity
    assert row["value"] == pytest.approx(used_share)
    assert f"{used_share:.0%} full" in row["evidence"]
    recs = recommendations_text(result)
    if severity == "ok":
        assert "disk" not in recs.lower()
    else:
        assert "Free or add disk" in recs
        assert "retention.ms" in " ".join(result.recommendations["detail"].astype(str))


def test_disk_used_without_free_is_information():
    metrics = metric("log_dir_used_bytes", "logdir:1:/var/kafka", np.full(N, 5 * 2**30))
    row = diagnose(Dataset(lag=healthy_lag(), metrics=metrics)).finding("disk_usage_high")
    assert row["severity"] == "info"
    assert "no log_dir_free_bytes recorded" in row["evidence"] and "5.0 GiB" in row["evidence"]


@pytest.mark.parametrize(
    ("metric_name", "signal", "label"),
    [
        ("request_handler_idle_ratio", "request_handler_idle_low", "num.io.threads"),
        ("network_processor_idle_ratio", "network_processor_idle_low", "num.network.threads"),
    ],
)
def test_idle_ratio_below_threshold(metric_name, signal, label):
    busy = np.concatenate([np.full(60, 0.8), np.full(60, 0.2)])
    metrics = pd.concat(
        [metric(metric_name, "broker-1", np.full(N, 0.9)), metric(metric_name, "broker-2", busy)]
    )
    result = diagnose(Dataset(lag=healthy_lag(), metrics=metrics))
    row = result.finding(signal)
    assert row["severity"] == "warning"
    assert row["value"] == pytest.approx(0.2)
    assert row["threshold"] == 0.3
    assert row["time_start"] == T0 + pd.Timedelta(seconds=300)
    assert "broker-2" in row["evidence"]
    assert label in recommendations_text(result)
    saturated = metric(metric_name, "broker-1", np.full(N, 0.05))
    assert (
        diagnose(Dataset(lag=healthy_lag(), metrics=saturated)).finding(signal)["severity"]
        == "critical"
    )
    fine = metric(metric_name, "broker-1", np.full(N, 0.7))
    fine_result = diagnose(Dataset(lag=healthy_lag(), metrics=fine))
    assert fine_result.finding(signal)["severity"] == "ok"
    assert label not in recommendations_text(fine_result)


# ---------------------------------------------------------------- producers


def test_producer_latency_and_queue_time_against_baseline():
    latency = np.concatenate([np.full(40, 5.0), np.linspace(5, 40, 40), np.full(40, 40.0)])
    queue = np.concatenate([np.full(60, 2.0), np.full(60, 12.0)])
    metrics = pd.concat(
        [
            metric("producer_request_latency_avg_ms", "producer:orders-app", latency),
            metric("producer_record_queue_time_avg_ms", "producer:orders-app", queue),
        ]
    )
    result = diagnose(Dataset(lag=healthy_lag(), metrics=metrics))
    request = result.finding("producer_request_latency_up")
    assert request["severity"] == "critical"  # 8x its baseline
    assert request["value"] == pytest.approx(8.0)
    assert "producer:orders-app" in request["evidence"] and "40 ms" in request["evidence"]
    # first sample at >= 2x the 5 ms baseline: 5 + 35 k / 39 >= 10 at k = 6, sample 46
    assert request["time_start"] == T0 + pd.Timedelta(seconds=5 * 46)
    queued = result.finding("producer_queue_time_up")
    assert queued["severity"] == "critical"
    assert queued["value"] == pytest.approx(6.0)
    recs = result.recommendations
    batching = recs[recs["recommendation"].str.contains("linger.ms")].iloc[0]
    assert "producer_request_latency_up" in batching["because"]
    assert "producer_queue_time_up" in batching["because"]
    assert "compression" in batching["detail"] and "flow control" in batching["detail"]


def test_small_latency_rise_is_not_a_finding():
    latency = np.concatenate([np.full(60, 0.2), np.full(60, 0.8)])  # 4x, but only 0.6 ms
    metrics = metric("producer_request_latency_avg_ms", "producer:a", latency)
    result = diagnose(Dataset(lag=healthy_lag(), metrics=metrics))
    assert result.finding("producer_request_latency_up")["severity"] == "ok"
    assert "linger.ms" not in recommendations_text(result)


def test_producer_latency_with_under_replication_points_at_acks():
    latency = np.concatenate([np.full(60, 5.0), np.full(60, 30.0)])
    urp = np.concatenate([np.zeros(60), np.full(60, 2.0)])
    metrics = pd.concat(
        [
            metric("producer_request_latency_avg_ms", "producer:a", latency),
            metric("under_replicated_partitions", "broker-1", urp),
        ]
    )
    result = diagnose(Dataset(lag=healthy_lag(), metrics=metrics))
    replication = result.recommendations[
        result.recommendations["recommendation"].str.startswith("Restore replication")
    ].iloc[0]
    assert "acks=all" in replication["detail"]
    assert "producer_request_latency_up" in replication["because"]


# ---------------------------------------------------------------- flush latency


def ar1(rng, n, phi):
    shocks = rng.normal(size=n)
    out = np.empty(n)
    out[0] = shocks[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def flush_dataset(related=True, n=360, seed=0):
    """Lag growth follows broker-1's flush latency 30 s later (or unrelated latency)."""
    rng = np.random.default_rng(seed)
    latency = 5 + 3 * np.abs(ar1(rng, n + 20, 0.95))
    growth = 40 * (latency[14 : 14 + n] - latency.mean())
    lag_total = 1000 + np.cumsum(growth) - np.cumsum(growth).min()
    stamp = times(n)
    partitions = 4
    per = np.round(lag_total / partitions).astype("int64")
    committed = 10_000_000 + np.arange(n) * 500
    lag = pd.DataFrame(
        {
            "time": np.tile(stamp, partitions),
            "cluster": "test",
            "group": "billing",
            "topic": "invoices",
            "partition": np.repeat(np.arange(partitions), n).astype("int32"),
            "committed_offset": np.tile(committed, partitions),
            "log_end_offset": np.tile(committed + per, partitions),
        }
    )
    lag["lag"] = lag["log_end_offset"] - lag["committed_offset"]
    flush = latency[20 : 20 + n] if related else 5 + 3 * np.abs(ar1(rng, n, 0.95))
    metrics = pd.concat(
        [
            metric("log_flush_time_ms_p99", "broker-1", flush),
            metric("log_flush_time_ms_p99", "broker-2", 2 + rng.normal(0, 0.1, n)),
        ]
    )
    return Dataset(lag=lag, metrics=metrics)


def test_flush_latency_correlated_with_lag():
    result = diagnose(flush_dataset(related=True))
    row = result.finding("flush_latency_correlated_with_lag")
    assert row["severity"] == "warning"
    assert "rises with lag growth" in row["evidence"]
    assert "moving first by 30 s" in row["evidence"]
    assert "not proof of cause" in row["evidence"]
    assert row["value"] > 0.8
    assert "Investigate broker disk latency" in recommendations_text(result)


def test_unrelated_flush_latency_is_no_alibi():
    # not significant is information, never "the brokers are fine"
    result = diagnose(flush_dataset(related=False, seed=1))
    row = result.finding("flush_latency_correlated_with_lag")
    assert row["severity"] == "info"
    assert row["evidence"].startswith("no significant correlation of broker log_flush_time_ms_p99")
    assert "Too little to clear the brokers" in row["evidence"]
    assert "disk latency" not in recommendations_text(result)


# ---------------------------------------------------------------- text safety and input


def test_user_named_strings_stay_plain_data_and_are_escaped_in_html():
    evil = "<img src=x onerror=alert(1)>"
    lag = growing_lag(owners=4, groups=(evil,), topics=("t&<b>",))
    result = diagnose(Dataset(lag=lag))
    assert evil in result.finding("lag_growing")["evidence"]  # plain data in the frame
    assert evil in " ".join(result.recommendations["recommendation"].astype(str))
    page = result._repr_html_()
    assert "<img" not in page and "<b>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "Recommendations" in page
    text = repr(result)
    assert "Top finding (critical)" in text and "Recommendations:" in text


def test_rejects_what_is_not_a_dataset():
    with pytest.raises(KbpInputError, match="needs a Dataset"):
        diagnose(healthy_lag())
    with pytest.raises(KbpInputError, match="baseline"):
        diagnose(Dataset(lag=healthy_lag()), baseline=0.9)


def test_plot_builder_draws_it():
    result = diagnose(Dataset(lag=growing_lag(owners=4)))
    figure = result.plot()
    assert len(figure.data) == 2  # findings table and recommendations table
