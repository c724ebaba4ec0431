"""Speed of ``kbp.incidents`` at 2,000 partitions x 720 snapshots (one hour at 5 s).

Usage::

    python -m benchmarks.bench_incidents [--partitions 2000] [--samples 720]

Builds the frame in three layouts (one group of 2,000 partitions, 20 groups of
100, 200 groups of 10), every group with two members and a producer surge in
the middle, then times ``incidents`` (after a warm-up call, so imports are not
counted) and, as the reference measured in the same run, Burrow's rules
(``lag_status``) on the same frame. Prints the times and the ratio; the target
is under 5 s for the incident model at this size.
"""

from __future__ import annotations

import argparse
import time

import kbp_notebook as kbp
from kbp_notebook.datasets import make_lag

TARGET_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=720)
    args = parser.parse_args()
    warm = make_lag(partitions=4, n=30, owners=2)
    kbp.incidents(warm), kbp.lag_status(warm)
    print(f"incidents on {args.partitions} partitions x {args.samples} snapshots (5 s apart)")
    print("| layout | rows | incidents | Burrow rules (lag_status) | ratio | episodes |")
    print("|---|---|---|---|---|---|")
    for groups in (1, 20, 200):
        partitions = max(args.partitions // groups, 1)
        lag = make_lag(
            groups=[f"group-{i}" for i in range(groups)], partitions=partitions,
            n=args.samples, step_s=5.0, owners=2, rw_noise=5.0, seed=1,
            produce_rate=[(0, 100), (args.samples * 2.5, 160), (args.samples * 3.3, 100)],
            consume_rate=130,
        )
        started = time.perf_counter()
        found = kbp.incidents(lag)
        model_s = time.perf_counter() - started
        started = time.perf_counter()
        kbp.lag_status(lag)
        burrow_s = time.perf_counter() - started
        verdict = "met" if model_s < TARGET_S else "MISSED"
        print(f"| {groups} x {partitions} | {len(lag):,} | {model_s:.2f} s ({verdict}) | "
              f"{burrow_s:.2f} s | {model_s / burrow_s:.1f}x | {len(found.episodes)} |")


if __name__ == "__main__":
    main()
