"""How often ``kbp.incidents`` names the right cause and onset, per group, on real recordings.

Usage::

    python -m benchmarks.incident_accuracy [DATASET_DIR ...]

Without arguments it reads every bundled sample; with arguments, the Dataset
folders given (e.g. held-out recordings of the same scenarios with other
seeds, made by ``python -m scenarios.record_all --seed N --out DIR``). A
recording's ``meta.json`` holds the ground truth per group:
``expected_causes`` (the cause vocabulary; ``none`` for a healthy control)
and ``expected_onsets`` (ISO times). A group is right when its first episode
has the expected cause and starts between 15 s before and 90 s after the true
onset, or, for ``none``, when it has no episode at all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import kbp_notebook as kbp

BEFORE_S, AFTER_S = 15.0, 90.0


def judge(ds: kbp.Dataset, name: str) -> list[dict[str, object]]:
    """One row per group with ground truth: expected vs found."""
    expected = ds.meta.get("expected_causes") or {}
    onsets = ds.meta.get("expected_onsets") or {}
    episodes = kbp.incidents(ds).episodes
    rows = []
    for group, cause in sorted(expected.items()):
        mine = episodes[episodes["group"] == group]
        found = str(mine.iloc[0]["cause"]) if len(mine) else "none"
        error_s = float("nan")
        onset_ok = True
        if cause != "none" and onsets.get(group) and len(mine):
            error_s = (mine.iloc[0]["start"] - pd.Timestamp(onsets[group])).total_seconds()
            onset_ok = -BEFORE_S <= error_s <= AFTER_S
        rows.append({"recording": name, "group": group, "expected": cause, "found": found,
                     "onset_error_s": error_s, "right": found == cause and onset_ok})
    return rows


def main(paths: list[str]) -> None:
    sources = ([(p, kbp.read_dataset(p)) for p in paths] if paths
               else [(n, kbp.load_sample(n)) for n in kbp.list_samples()])
    rows = []
    for name, ds in sources:
        rows.extend(judge(ds, Path(name).name))
    table = pd.DataFrame(rows)
    if table.empty:
        print("no recording has ground truth (expected_causes in meta.json)")
        return
    print("| recording | group | expected | found | onset error | right |")
    print("|---|---|---|---|---|---|")
    for row in table.itertuples(index=False):
        error = "" if pd.isna(row.onset_error_s) else f"{row.onset_error_s:+.0f} s"
        print(f"| {row.recording} | {row.group} | {row.expected} | {row.found} | {error} | "
              f"{'yes' if row.right else 'NO'} |")
    right = int(table["right"].sum())
    print(f"\n{right} of {len(table)} groups right ({right / len(table):.0%}); target >= 90%")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "datasets", nargs="*", metavar="DATASET_DIR",
        help="recording folders with ground truth in meta.json (default: the bundled samples)",
    )  # fmt: skip
    main(parser.parse_args().datasets)
