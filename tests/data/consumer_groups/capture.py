"""Capture real ``kafka-consumer-groups`` outputs from a sandbox into this folder.

Run once (``.venv/bin/python tests/data/consumer_groups/capture.py``); the
``*.txt`` / ``*.log`` files it writes are what the tool printed (stdout, then
stderr, as ``2>&1`` would save them) for a scenario whose offsets are known, and
``expected.json`` holds those known facts (from the setup, not from parsing).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from kbp_notebook.sandbox import Sandbox

HERE = Path(__file__).resolve().parent


def produce(bootstrap: str, counts: dict[tuple[str, int], int]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for (topic, partition), n in counts.items():
        for _ in range(n):
            producer.send(topic, b"m", partition=partition)
    producer.flush()
    producer.close()


def main() -> int:
    with Sandbox(brokers=1, prometheus=False) as sb:
        bootstrap = sb.bootstrap_servers
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("orders", 3, 1), NewTopic("audit", 2, 1)])
        time.sleep(2)
        produce(bootstrap, {("orders", p): 40 * (p + 1) for p in range(3)})
        produce(bootstrap, {("audit", p): 40 * (p + 1) for p in range(2)})

        # "billing": no active members, commits 0/10/20 on orders
        billing = KafkaConsumer(bootstrap_servers=bootstrap, group_id="billing")
        billing.commit(
            {TopicPartition("orders", p): OffsetAndMetadata(10 * p, "", -1) for p in range(3)}
        )
        billing.close()

        # "audit trail" (a group id with a space): a live member that never commits
        stop = threading.Event()

        def live(group: str, topics: list[str], client_id: str, commit: bool) -> None:
            consumer = KafkaConsumer(
                *topics, bootstrap_servers=bootstrap, group_id=group, client_id=client_id,
                auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=5,
            )  # fmt: skip
            committed = False
            while not stop.is_set():
                consumer.poll(200)
                if commit and not committed and consumer.assignment():
                    consumer.commit({TopicPartition("orders", 0): OffsetAndMetadata(33, "", -1)})
                    committed = True
            consumer.close()

        threads = [
            threading.Thread(target=live, args=("audit trail", ["audit"], "audit app", False)),
            threading.Thread(target=live, args=("payments", ["orders"], "payments-1", True)),
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            described = admin.describe_groups(["audit trail", "payments"])
            if all(d["group_state"] == "Stable" and d["members"] for d in described.values()):
                break
            time.sleep(0.5)
        time.sleep(2)

        def tool(*args: str) -> str:
            result = sb.consumer_groups(*args)
            return result.stdout + result.stderr

        files = {
            "describe_all_groups.txt": tool("--describe", "--all-groups"),
            "describe_all_groups_verbose.txt": tool("--describe", "--all-groups", "--verbose"),
            "describe_group_no_active_members.txt": tool("--describe", "--group", "billing"),
            "describe_several_groups.txt": tool(
                "--describe", "--group", "billing", "--group", "audit trail"
            ),
            "describe_nonexistent_group.txt": tool("--describe", "--group", "ghost"),
            "describe_members.txt": tool("--describe", "--all-groups", "--members"),
            "describe_state.txt": tool("--describe", "--all-groups", "--state"),
        }
        # a log of repeated runs, with real `date -Is` and `date -u` lines between them
        runs = []
        for index, date_args in enumerate((["-Is"], ["-u"], ["-Is"])):
            stamp = subprocess.run(["date", *date_args], capture_output=True, text=True).stdout
            runs.append(stamp + tool("--describe", "--group", "billing"))
            produce(bootstrap, {("orders", 0): 10 * (index + 1)})
        files["repeated_runs.log"] = "".join(runs)
        stop.set()
        for thread in threads:
            thread.join(30)
        admin.close()

    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")
    expected = {
        "log_end_offset": {"orders": [40, 80, 120], "audit": [40, 80]},
        "billing": {"orders": [0, 10, 20]},
        "audit trail": {"client_id": "audit app", "host": "/127.0.0.1"},
        "payments": {"client_id": "payments-1", "orders_0_committed": 33},
        "repeated_runs_orders_0_log_end": [40, 50, 70],
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(files)} files to {HERE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
