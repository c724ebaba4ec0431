"""Record every scenario on a fresh sandbox and write the Dataset folders.

Usage::

    python -m scenarios.record_all [--short] [--only NAME ...] [--out DIR] [--seed N]

Each scenario gets its own fresh ``Sandbox`` (one broker + Prometheus, with
the scenario's ``SANDBOX`` options), so its broker metrics start from a
clean slate; they run one after another. ``--out`` defaults to the
package's ``kbp_notebook/sample_data/`` (the top-level ``sample_data`` points there) for the
long form and to
``build/samples-short/`` for ``--short`` (the short form is for CI and for
trying a change, not for shipping). The README.md of each shipped sample is
written by hand-reviewed text in ``scenarios/readmes/`` and copied next to
the data, with the figures of the new recording filled in.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from scenarios import MODULES, scenario

REPO = Path(__file__).resolve().parents[1]
log = logging.getLogger("scenarios")


def _kafka_version() -> str:
    from kbp_notebook.sandbox import _kafka_version as version

    return str(version())


def record(
    name: str, out_root: Path, *, short: bool, verify: bool = True, seed: int | None = None
) -> tuple[Path, float]:
    """Record scenario ``name`` on a fresh sandbox; return its folder and duration in s.

    The recording is written to ``<out_root>/.<name>.recording`` and only moves
    to ``<out_root>/<name>`` once it passes ``scenarios.expectations.check``
    (with ``verify``), so a run on a machine too busy to show the incident
    never replaces a good sample; the failed recording stays for inspection.
    ``seed`` records a variant (``scenarios._variant``) instead of the defaults.
    """
    from kbp_notebook.collect import read_dataset
    from kbp_notebook.sandbox import Sandbox
    from scenarios.expectations import check

    module = scenario(name)
    options = dict(module.SANDBOX)
    staging = out_root / f".{name}.recording"
    started = time.monotonic()
    with Sandbox(**options) as sandbox:
        module.run(sandbox, staging, short=short, seed=seed)
    elapsed = time.monotonic() - started
    meta_file = staging / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta.update(
        {
            "scenario": name,
            "description": (module.__doc__ or name).strip().splitlines()[0],
            "kafka_version": _kafka_version(),
            "brokers": options.get("brokers", 1),
            "sandbox_broker_config": {
                **_SANDBOX_DEFAULTS,
                **{key: str(value) for key, value in options.get("broker_config", {}).items()},
            },
            "recorded_by": f"python -m scenarios.record_all --only {name}"
            + (" --short" if short else "")
            + ("" if seed is None else f" --seed {seed}"),
            "record_wall_time_s": round(elapsed),
        }
    )
    meta_file.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    _write_readme(name, staging, meta)
    if verify:
        check(read_dataset(staging), name)
    final = out_root / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final, elapsed


# The sandbox's own settings that matter for reading the recordings (see kbp_notebook.sandbox).
_SANDBOX_DEFAULTS = {
    "num.io.threads": "4",
    "num.network.threads": "3",
    "log.segment.bytes": str(4 * 1024 * 1024),
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "8",
    "broker heap": "-Xmx256m, serial GC",
}


def _write_readme(name: str, folder: Path, meta: dict[str, object]) -> None:
    from scenarios.readmes import render

    (folder / "README.md").write_text(render(name, folder, meta), encoding="utf-8")


def refresh(name: str, folder: Path) -> None:
    """Rewrite a recorded sample's ground truth (``expected_causes``/``_onsets``) and README.

    For recordings made before the scenario said its ground truth, or after a
    change to the README's prose: nothing is re-recorded, the figures are
    read back from the data.
    """
    from kbp_notebook.collect import read_dataset
    from scenarios.expectations import ground_truth

    meta_file = folder / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    meta.update(ground_truth(name, meta, read_dataset(folder).events))
    meta_file.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    _write_readme(name, folder, meta)


def write_index(out_root: Path) -> Path:
    """Write ``<out_root>/README.md``: one line per recorded sample."""
    rows = []
    for name in MODULES:
        folder = out_root / name
        if not (folder / "meta.json").exists():
            continue
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        rows.append(
            f"| [`{name}`]({name}/README.md) | {meta.get('description', '')} | "
            f"{meta.get('duration_s', 0):.0f} s | {size / 1024:.0f} KiB |"
        )
    text = (
        "# Sample recordings\n\n"
        "Real incidents reproduced on the sandbox Kafka by `scenarios/` (`make samples`) and\n"
        "recorded with kbp_notebook's own collectors. Load one with `kbp.load_sample(name)`;\n"
        "each folder's README.md says what happened when and what the data can answer.\n\n"
        "| sample | what happens | recorded | size |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    path = out_root / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``make samples``)."""
    parser = argparse.ArgumentParser(prog="python -m scenarios.record_all", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the quick CI form of each scenario")
    parser.add_argument(
        "--only", action="append", choices=list(MODULES), metavar="NAME",
        help=f"record only this scenario (repeatable): {', '.join(MODULES)}",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="folder for the Dataset folders")
    parser.add_argument(
        "--seed", type=int, default=None,
        help="record a variant: rates, sizes and phase lengths drawn from this seed",
    )  # fmt: skip
    parser.add_argument(
        "--no-verify", action="store_true",
        help="keep a recording even if it does not pass scenarios.expectations",
    )  # fmt: skip
    parser.add_argument(
        "--refresh", action="store_true",
        help="re-derive ground truth and README.md of the recorded samples; record nothing",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    samples = REPO / "kbp_notebook" / "sample_data"
    out = args.out or (REPO / "build/samples-short" if args.short else samples)
    out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(MODULES)
    if args.refresh:
        for name in names:
            if (out / name / "meta.json").exists():
                refresh(name, out / name)
        write_index(out)
        return 0
    failures = []
    for name in names:
        log.info("recording %s%s -> %s", name, " (short)" if args.short else "", out / name)
        try:
            folder, elapsed = record(
                name, out, short=args.short, verify=not args.no_verify, seed=args.seed
            )
        except Exception:
            log.exception("scenario %s failed (see %s)", name, out / f".{name}.recording")
            failures.append(name)
            continue
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        log.info("recorded %s in %.0f s, %.0f KiB", name, elapsed, size / 1024)
    write_index(out)
    if failures:
        log.error("failed: %s", ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
