"""Run every benchmark once and write ``benchmarks/RESULTS.md`` (``make bench``).

Sections (each a module that can also run alone: ``python -m benchmarks.<name>``):

1. ``backtest_drain.py`` -- drain ETA of ``time_to_drain`` vs naive,
   predict_linear and Burrow, on recordings with a drain (bundled samples;
   fresh short scenario runs on the sandbox with ``--fresh``, or
   automatically when no bundled sample has a drain) and on synthetic data
   (labelled).
2. ``time_lag_accuracy.py`` -- ``time_lag`` vs kafka-lag-exporter's method
   against the truth read from the records (real workload on the sandbox);
   2b. ``time_lag_records.py`` -- lag in seconds from record timestamps
   (``snapshot(time_lag=True)``) with bursts and an idle producer, beside both;
   2c. ``bench_time_lag_cost.py`` -- what ``time_lag=True`` costs on 1,000
   lagging partitions (time, requests, bytes).
3. Speed and scale: ``bench_snapshot.py`` (collectors' snapshot vs the
   official tool as a process) and ``bench_analysis.py`` (vectorised vs naive
   loop), run as subprocesses with their output kept verbatim;
   ``bench_notebook.py`` (demo render, first and warm); ``bench_memory.py``
   (memory per million LAG rows).

A section that fails or is missing is reported as such in RESULTS.md; the
others still run. Run from the repository root: ``python -m benchmarks.run_all [--fresh]
[--out PATH] [--skip NAME ...]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SECTIONS = (
    "incidents", "incident_accuracy",
    "backtest", "time_lag", "time_lag_records", "time_lag_cost", "snapshot", "analysis",
    "notebook", "memory",
)  # fmt: skip
#: Timeouts for the other helpers' scripts, run as subprocesses.
SUBPROCESS_TIMEOUT_S = 600
#: Arguments for bench_analysis.py: its default is 100,000 partitions x 500 samples, whose
#: frame alone takes ~5 min to build on the 2-core bench machine; 20,000 keeps make bench
#: within its ~20 min budget (the naive loop is timed on a subset and extrapolated anyway).
ANALYSIS_ARGS: list[str] = ["--partitions", "20000"]


def machine_description() -> list[str]:
    """Lines describing this machine, the software, and how busy it was."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    versions = []
    for name in ("pandas", "numpy", "scipy", "pyarrow", "kafka"):
        try:
            module = __import__(name)
            versions.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            continue
    try:
        from kbp_notebook.sandbox import DEFAULT_KAFKA_VERSION

        versions.append(
            f"Apache Kafka {os.environ.get('KBP_KAFKA_VERSION', DEFAULT_KAFKA_VERSION)}"
        )
    except ImportError:
        pass
    load = os.getloadavg()
    return [
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}",
        f"- Machine: {platform.node()}, {platform.system()} {platform.release()}, {cpu}, "
        f"{os.cpu_count()} logical CPUs, {memory}",
        f"- Software: Python {platform.python_version()}, {', '.join(versions)}",
        f"- Load average at start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) "
        "— other work was running on this machine; wall-clock timings are noisy, ratios measured "
        "side by side in the same run are the figures to read.",
    ]


def module_command(script: str) -> str:
    """The command that runs ``benchmarks/<script>`` from the repository root."""
    return f"python -m benchmarks.{Path(script).stem}"


def run_script(name: str, args: list[str] | None = None) -> tuple[str, int | None, float]:
    """Run ``benchmarks/<name>`` as a subprocess (``python -m benchmarks.<stem>`` in the root).

    Returns (output, exit code or None if the script is absent, seconds).
    """
    if not (HERE / name).exists():
        return "", None, 0.0
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{Path(name).stem}", *(args or [])],
            capture_output=True, text=True, cwd=ROOT, timeout=SUBPROCESS_TIMEOUT_S, check=False,
        )  # fmt: skip
        output = proc.stdout + (f"\n[stderr]\n{proc.stderr[-3000:]}" if proc.returncode else "")
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = (
            (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        )
        output += f"\n[timed out after {SUBPROCESS_TIMEOUT_S} s]"
        code = -1
    return output, code, time.perf_counter() - started


def ratios_in(text: str) -> list[str]:
    """Lines of a script's output that state a ratio (``12x``, ``12×``, ``RATIO``)."""
    pattern = re.compile(r"(RATIO|ratio|\d[\d,.]*\s*[x×](\b|\s|$))")
    return [line.strip() for line in text.splitlines() if pattern.search(line)]


def headline_ratio(text: str, marker: str) -> tuple[str, float]:
    """The first output line containing ``marker`` and the ratio (``12.3x``) it states."""
    for line in text.splitlines():
        if marker in line:
            found = re.search(r"([\d.]+)\s*[x×]", line.split(marker, 1)[1])
            return line.strip(), float(found.group(1)) if found else float("nan")
    return "", float("nan")


def external_section(
    title: str, script: str, args: list[str], owner: str, *, marker: str
) -> tuple[str, dict]:
    """Markdown for another helper's benchmark script, called as a subprocess."""
    output, code, seconds = run_script(script, args)
    lines = [f"## {title}", ""]
    figures: dict[str, object] = {}
    if code is None:
        lines.append(f"**Not run: `benchmarks/{script}` ({owner}) is not in the repository yet.**")
        figures["missing"] = True
        return "\n".join(lines), figures
    status = "ok" if code == 0 else f"FAILED (exit {code})"
    lines.append(
        f"`{module_command(script)} {' '.join(args)}`".replace(" `", "`")
        + f" ({owner}): {status}, {seconds:.0f} s. Its output, verbatim:"
    )
    lines.extend(["", "```", output.strip(), "```"])
    figures["ratio_lines"] = ratios_in(output)
    figures["headline"], figures["ratio"] = headline_ratio(output, marker)
    figures["exit"] = code
    return "\n".join(lines), figures


def guarded(name: str, func: Callable[[], dict]) -> tuple[str, dict, float]:
    """Run one in-process section; a failure becomes a visible note in RESULTS.md."""
    started = time.perf_counter()
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    try:
        result = func()
        markdown, figures = result["markdown"], result["figures"]
    except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
        markdown = (
            f"## {name}\n\n**FAILED**: `{type(exc).__name__}: {exc}`\n\n<details><summary>traceback"
            f"</summary>\n\n```\n{traceback.format_exc()[-4000:]}\n```\n\n</details>"
        )
        figures = {"failed": True}
    seconds = time.perf_counter() - started
    print(f"[bench] {name} done in {seconds:.0f} s", file=sys.stderr, flush=True)
    return markdown, figures, seconds


def _pct(value: object) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if number != number else f"{number:.0%}"


def _x(value: object) -> str:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if number != number else f"{number:.2f}×"


def summary_table(figures: dict[str, dict]) -> list[str]:
    """The targets, each with what this run measured and met/MISSED."""
    rows = ["| target | measured in this run | verdict |", "|---|---|---|"]
    backtest = figures.get("backtest", {})
    for prefix, label in (
        ("new_long_ours_", "real drains ≥ 3 min, with owners"),
        ("new_long_ours_no_owners_", "real drains ≥ 3 min, without owners"),
        ("synthetic_ours_", "SYNTHETIC data"),
    ):
        if "backtest" not in figures:
            break
        ratio = backtest.get(f"{prefix}error_ratio")
        cov = backtest.get(f"{prefix}coverage")
        finite = backtest.get(f"{prefix}finite_slow_end")
        if ratio is None:
            rows.append(
                f"| drain ETA ≥ 2× better than best baseline ({label}) | not measured | – |"
            )
            continue
        rows.append(
            f"| drain ETA median abs error ≥ 2× smaller than best baseline ({label}) | "
            f"best baseline / ours = {_x(ratio)} | {'met' if ratio >= 2 else 'MISSED'} |"
        )
        rows.append(
            f"| 90% ETA interval covers 80–100% ({label}) | {_pct(cov)} | "
            f"{'met' if cov is not None and cov >= 0.8 else 'MISSED'} |"
        )
        rows.append(
            f"| finite slow end at ≥ 90% of drain moments ({label}) | {_pct(finite)} | "
            f"{'met' if finite is not None and finite >= 0.9 else 'MISSED'} |"
        )
    tl = figures.get("time_lag", {})
    if "time_lag" not in figures:
        pass
    elif "all_ours_5s_max_rel_error" in tl:
        ours, exp = tl["all_ours_5s_max_rel_error"], tl["all_exporter_max_rel_error"]
        rows.append(
            "| time_lag never > 20% off where it gives a figure (true lag ≥ 10 s), "
            "exporter worse | "
            f"ours max {_pct(ours)} (5 s snapshots), {_pct(tl.get('all_ours_30s_max_rel_error'))} "
            f"(30 s); exporter max {_pct(exp)} | "
            f"{'met' if ours <= 0.2 and exp > ours else 'MISSED'} |"
        )
    else:
        rows.append("| time_lag never > 20% off | not measured (section failed) | – |")
    records = figures.get("time_lag_records", {})
    if "all_record_median_scaled" in records:
        median, p95 = records["all_record_median_scaled"], records["all_record_p95_scaled"]
        rows.append(
            "| lag in seconds from record timestamps: median abs error ≤ max(1 s, 5%), "
            "p95 ≤ max(2 s, 10%) (bursts, idle producer) | "
            f"median {records['all_record_median_abs_s']:.3f} s, "
            f"p95 {records['all_record_p95_abs_s']:.3f} s (scaled {median:.2f}, {p95:.2f}) | "
            f"{'met' if median <= 1 and p95 <= 1 else 'MISSED'} |"
        )
    elif "time_lag_records" in figures:
        rows.append("| lag in seconds from record timestamps | section failed | – |")
    for key, label, target in (
        ("snapshot", "snapshot ≥ 10× faster than the official tool as a process", 10.0),
        ("analysis", "vectorised analysis ≥ 50× the naive loop", 50.0),
    ):
        if key not in figures:
            continue
        info = figures[key]
        if info.get("missing"):
            rows.append(f"| {label} | script not in the repository yet | – |")
            continue
        ratio = float(info.get("ratio", float("nan")))
        if info.get("exit") != 0 or ratio != ratio:
            rows.append(f"| {label} | {info.get('headline') or 'no ratio printed'} | FAILED |")
        else:
            verdict = "met" if ratio >= target else "MISSED"
            rows.append(f"| {label} | `{info['headline']}` | {verdict} |")
    nb = figures.get("notebook", {})
    if "notebook" not in figures:
        pass
    elif "warm_s" in nb:
        rows.append(
            f"| demo render < 60 s warm | first {nb['first_s']:.1f} s, warm {nb['warm_s']:.1f} s | "
            f"{'met' if nb['warm_s'] < 60 else 'MISSED'} |"
        )
    else:
        rows.append("| demo render < 60 s warm | render failed (see §3b) | MISSED |")
    mem = figures.get("memory", {})
    if "memory_mib_per_million_rows" in mem:
        rows.append(
            "| memory per million LAG rows (no target) | "
            f"{mem['memory_mib_per_million_rows']:.0f} MiB "
            f"in memory, {mem['parquet_mib_per_million_rows']:.1f} MiB zstd Parquet "
            f"({mem['memory_over_parquet']:.0f}× smaller on disk) | – |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fresh", action="store_true", help="backtest fresh short scenario runs too"
    )
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    header = machine_description()
    sections: dict[str, str] = {}
    figures: dict[str, dict] = {}
    timings: dict[str, float] = {}

    def backtest() -> dict:
        import kbp_notebook as kbp
        from benchmarks import backtest_drain

        fresh = args.fresh
        if not fresh and not kbp.list_samples():
            fresh = (
                True  # no bundled recording yet: make fresh ones rather than report synthetic only
            )
        only = None if args.fresh else ["slow-consumer-then-scale-out", "producer-burst"]
        return backtest_drain.run(fresh=fresh, fresh_only=only if fresh else None)

    def time_lag() -> dict:
        from benchmarks import time_lag_accuracy

        return time_lag_accuracy.run()

    def time_lag_records() -> dict:
        from benchmarks import time_lag_records as records

        return records.run()

    def notebook() -> dict:
        from benchmarks import bench_notebook

        return bench_notebook.run()

    def memory() -> dict:
        from benchmarks import bench_memory

        return bench_memory.run()

    if "snapshot" not in args.skip:
        t0 = time.perf_counter()
        sections["snapshot"], figures["snapshot"] = external_section(
            "3a. Snapshot speed (collectors' benchmark)",
            "bench_snapshot.py",
            [],
            "collectors helper",
            marker="kbp process vs tool process",
        )
        timings["snapshot"] = time.perf_counter() - t0
    if "time_lag_cost" not in args.skip:
        t0 = time.perf_counter()
        sections["time_lag_cost"], figures["time_lag_cost"] = external_section(
            "2c. Cost of `snapshot(time_lag=True)` on 1,000 lagging partitions",
            "bench_time_lag_cost.py",
            [],
            "issue 14",
            marker="16 MiB cap",
        )
        timings["time_lag_cost"] = time.perf_counter() - t0
    for key, title, script in (
        ("incidents", "1a. Speed of the incident model (2,000 partitions x 720 snapshots)",
         "bench_incidents.py"),
        ("incident_accuracy", "1b. Right cause and onset per group on the recordings",
         "incident_accuracy.py"),
    ):
        if key not in args.skip:
            t0 = time.perf_counter()
            sections[key], figures[key] = external_section(
                title, script, [], "issue 11", marker="groups right")
            timings[key] = time.perf_counter() - t0
    if "analysis" not in args.skip:
        t0 = time.perf_counter()
        sections["analysis"], figures["analysis"] = external_section(
            "3a. Vectorised analysis vs naive loop (analysis benchmark)",
            "bench_analysis.py",
            ANALYSIS_ARGS,
            "analysis helper",
            marker="RATIO",
        )
        timings["analysis"] = time.perf_counter() - t0
    for name, func in (
        ("memory", memory),
        ("notebook", notebook),
        ("backtest", backtest),
        ("time_lag", time_lag),
        ("time_lag_records", time_lag_records),
    ):
        if name in args.skip:
            continue
        sections[name], figures[name], timings[name] = guarded(name, func)

    total = time.perf_counter() - started
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (`python -m benchmarks.run_all`) in one run.",
        "",
    ]
    lines.extend(header)
    lines.append(
        f"- Wall time of this run: {total / 60:.1f} min ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + ")"
    )
    if args.skip:
        lines.append(f"- Skipped on request: {', '.join(args.skip)}")
    lines.extend(["", "## Targets", ""])
    lines.extend(summary_table(figures))
    lines.append("")
    for name in (
        "incidents", "incident_accuracy", "backtest", "time_lag", "time_lag_records",
        "time_lag_cost", "snapshot", "analysis", "notebook", "memory",
    ):  # fmt: skip
        if name in sections:
            lines.extend([sections[name], ""])
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out} in {total / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
