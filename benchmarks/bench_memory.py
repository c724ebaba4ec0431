"""Memory per million LAG rows: in memory (``memory_usage(deep=True)``) and on disk.

Builds a LAG frame of one million rows (1,000 partitions x 1,000 snapshots,
two groups, realistic string columns, the validated dtypes), measures its
in-memory size, then writes it with ``kbp.write_dataset`` (zstd Parquet) and
measures the folder; CSV of the same frame is the reference for the ratio.

Run: ``python -m benchmarks.bench_memory``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROWS = 1_000_000


def million_row_frame() -> pd.DataFrame:
    """One million validated LAG rows: 2 groups x 500 partitions x 1,000 snapshots at 5 s."""
    from kbp_notebook.datasets import make_lag
    from kbp_notebook.frames import validate_lag_frame

    frame = make_lag(
        groups=("orders-enricher", "payments-audit"),
        topics=("orders",),
        partitions=500,
        n=1000,
        step_s=5.0,
        produce_rate=200.0,
        consume_rate=[(0, 250.0), (1500, 150.0), (3500, 300.0)],
        rw_noise=5.0,
        noise=20.0,
        owners=50,
        seed=11,
    )
    assert len(frame) == ROWS, len(frame)
    return validate_lag_frame(frame)


def folder_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run() -> dict:
    """Measure; return ``{"markdown": str, "figures": dict}``."""
    from kbp_notebook.collect import read_dataset, write_dataset
    from kbp_notebook.frames import Dataset

    frame = million_row_frame()
    per_million = ROWS / 1e6
    memory = frame.memory_usage(deep=True).sum() / per_million
    with tempfile.TemporaryDirectory(prefix="kbp-bench-mem-") as tmp:
        folder = Path(tmp) / "ds"
        started = time.perf_counter()
        write_dataset(Dataset(lag=frame), folder)
        write_s = time.perf_counter() - started
        started = time.perf_counter()
        back = read_dataset(folder).lag
        read_s = time.perf_counter() - started
        parquet = folder_bytes(folder / "lag") / per_million
        csv_path = Path(tmp) / "lag.csv"
        frame.to_csv(csv_path, index=False)
        csv = csv_path.stat().st_size / per_million
    same = len(back) == len(frame) and bool(
        np.array_equal(back["lag"].to_numpy(), frame["lag"].to_numpy())
    )
    mib = 2**20
    figures = {
        "memory_mib_per_million_rows": memory / mib,
        "parquet_mib_per_million_rows": parquet / mib,
        "csv_mib_per_million_rows": csv / mib,
        "memory_over_parquet": memory / parquet,
        "csv_over_parquet": csv / parquet,
        "write_s": write_s,
        "read_s": read_s,
    }
    columns = ", ".join(f"{c} ({frame[c].dtype})" for c in frame.columns)
    lines = [
        "## 3c. Memory per million LAG rows",
        "",
        f"Frame: {columns}.",
        "",
        "| where | MiB per million rows | ratio |",
        "|---|---|---|",
        f"| in memory (`memory_usage(deep=True)`) | {figures['memory_mib_per_million_rows']:.1f} | "
        f"{figures['memory_over_parquet']:.1f}× the Parquet size |",
        "| on disk, zstd Parquet (`write_dataset`) | "
        f"{figures['parquet_mib_per_million_rows']:.1f} | 1× |",
        f"| on disk, CSV (reference) | {figures['csv_mib_per_million_rows']:.1f} | "
        f"{figures['csv_over_parquet']:.1f}× the Parquet size |",
        "",
        f"Write {write_s:.1f} s, read back {read_s:.1f} s (round trip exact: {same}).",
    ]
    return {"markdown": "\n".join(lines), "figures": figures}


def main() -> int:
    """Print the section as Markdown."""
    print(run()["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
