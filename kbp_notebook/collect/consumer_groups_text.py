r"""Read saved ``kafka-consumer-groups.sh --describe`` output into a LAG frame.

The official tool prints padded columns under a header line (one header per
group), ``-`` for unknown values, and notices such as "Consumer group 'g' has
no active members." Group ids, hosts and client ids may contain spaces, so
rows are cut at the header's column positions rather than split on blanks.

A log of repeated runs, each preceded by a timestamp line::

    while true; do date -Is; kafka-consumer-groups.sh --bootstrap-server B \
        --describe --all-groups 2>&1; sleep 30; done >> lag.log

becomes a time series: each row takes the time of the last timestamp line
above it. ``date -Is``, ``date -u``/plain ``date`` (with a UTC offset or a
common zone abbreviation), ``date -R`` and ISO 8601 lines are understood.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import re
from typing import Any

import pandas as pd

from kbp_notebook.errors import KbpInputError
from kbp_notebook.frames import validate_lag_frame

__all__ = ["parse_consumer_groups"]

# Columns of the --describe (offsets) layout, by header name -> our column.
_COLUMN_NAMES = {
    "GROUP": "group",
    "TOPIC": "topic",
    "PARTITION": "partition",
    "CURRENT-OFFSET": "committed_offset",
    "LOG-END-OFFSET": "log_end_offset",
    "LAG": "lag",
    "CONSUMER-ID": "consumer_id",
    "HOST": "host",
    "CLIENT-ID": "client_id",
    "LEADER-EPOCH": "leader_epoch",
}
# Headers that contain a space (from --state / --members layouts).
_MULTIWORD_HEADERS = (("COORDINATOR", "(ID)"),)

_NOTICE = re.compile(
    r"""^(?:
        (?:warning:\s*)?consumer\ group\ .*\ (?:has\ no\ active\ members|is\ rebalancing
            |does\ not\ exist|is\ empty)\.?
      | (?:error|warning|warn|note|info):.*
      | slf4j:.*
      | log4j:.*
      | \[?\d{4}-\d\d-\d\d[\ T][\d:,.]+\]?\s+(?:trace|debug|info|warn|warning|error|fatal)\b.*
      | (?:caused\ by:).*
      | at\ [\w$.<>/-]+\(.*\)
      | \.\.\.\ \d+\ more
      | (?:[a-z_$][\w$]*\.)+[\w$]*(?:exception|error)(?::.*)?
    )$""",
    re.IGNORECASE | re.VERBOSE,
)

_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
    r"(?:\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?))?$",
    re.IGNORECASE,
)
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
# `date` in the C / en_US locales: "Thu Nov 26 15:30:24 UTC 2026" (optionally "03:30:24 PM").
_PLAIN_DATE = re.compile(
    rf"^(?:(?:{_DAYS})[a-z]*,?\s+)?(?P<mon>{_MONTHS})[a-z]*\s+(?P<day>\d{{1,2}}),?\s+"
    r"(?P<clock>\d{1,2}:\d{2}:\d{2})(?:\s*(?P<ampm>AM|PM))?\s+(?P<tz>[A-Za-z]{1,5}|[+-]\d{4})?\s*"
    r"(?P<year>\d{4})$",
    re.IGNORECASE,
)
# `date` in en_GB-like locales: "Thu 26 Nov 2026 15:30:24 UTC".
_PLAIN_DATE_DMY = re.compile(
    rf"^(?:(?:{_DAYS})[a-z]*,?\s+)?(?P<day>\d{{1,2}})\s+(?P<mon>{_MONTHS})[a-z]*\s+"
    r"(?P<year>\d{4}),?\s+(?P<clock>\d{1,2}:\d{2}:\d{2})(?:\s*(?P<ampm>AM|PM))?"
    r"(?:\s+(?P<tz>[A-Za-z]{1,5}|[+-]\d{4}))?$",
    re.IGNORECASE,
)
_ZONES_H = {
    "UTC": 0, "GMT": 0, "Z": 0, "UT": 0, "WET": 0, "WEST": 1, "BST": 1, "CET": 1, "CEST": 2,
    "EET": 2, "EEST": 3, "MSK": 3, "IST": 5.5, "SGT": 8, "HKT": 8, "JST": 9, "KST": 9,
    "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13, "EST": -5, "EDT": -4, "CST": -6,
    "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10,
}  # fmt: skip
_DECORATION = " \t#=*[]()<>-:"
_EARLIEST = pd.Timestamp("1678-01-01T00:00:00Z")  # datetime64[ns] holds 1677-09-21 ..
_LATEST = pd.Timestamp("2261-12-31T23:59:59Z")  # .. 2262-04-11


def _timestamp(line: str, number: int) -> pd.Timestamp | None:
    """Return the time a timestamp line names, or None if it is not one."""
    text = line.strip().strip(_DECORATION).strip()
    if not text or not text[0].isalnum():
        return None
    if _ISO.match(text):
        stamp = pd.Timestamp(text.replace(",", ".").replace("UTC", "+00:00"))
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    match = _PLAIN_DATE.match(text) or _PLAIN_DATE_DMY.match(text)
    if match:
        parts = match.groupdict()
        clock = parts["clock"] + (f" {parts['ampm']}" if parts.get("ampm") else "")
        fmt = "%d %b %Y %I:%M:%S %p" if parts.get("ampm") else "%d %b %Y %H:%M:%S"
        try:
            naive = _dt.datetime.strptime(
                f"{parts['day']} {parts['mon'][:3].title()} {parts['year']} {clock}", fmt
            )
        except ValueError:
            return None
        tz = (parts.get("tz") or "").upper()
        if tz.startswith(("+", "-")):
            hours = int(tz[1:3]) + int(tz[3:5]) / 60
            offset_h = hours if tz[0] == "+" else -hours
        elif tz in _ZONES_H:
            offset_h = _ZONES_H[tz]
        elif tz == "":
            offset_h = 0.0
        else:
            raise KbpInputError(
                f"line {number}: timestamp {line.strip()!r} uses the time zone {tz!r}, which is "
                f"ambiguous; log timestamps with `date -Is` or `date -u` instead.",
                line=number,
            )
        aware = naive.replace(tzinfo=_dt.timezone(_dt.timedelta(hours=offset_h)))
        return pd.Timestamp(aware).tz_convert("UTC")
    if "," in text[:5]:
        try:
            parsed = email.utils.parsedate_to_datetime(text)  # `date -R`
        except (TypeError, ValueError):
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.UTC)
        return pd.Timestamp(parsed).tz_convert("UTC")
    return None


def _header(line: str) -> list[tuple[str, int]] | None:
    """Return (name, start) of each header column, or None if not a header line."""
    tokens = [(m.group(0), m.start()) for m in re.finditer(r"\S+", line)]
    names = [t for t, _ in tokens]
    if "TOPIC" not in names and not ("GROUP" in names and "CONSUMER-ID" in names):
        if not ("GROUP" in names and ("STATE" in names or "COORDINATOR" in names)):
            return None
    if any(not t.replace("-", "").replace("(", "").replace(")", "").isupper() for t in names):
        return None
    merged: list[tuple[str, int]] = []
    for name, start in tokens:
        if merged and (merged[-1][0], name) in _MULTIWORD_HEADERS:
            merged[-1] = (f"{merged[-1][0]} {name}", merged[-1][1])
        else:
            merged.append((name, start))
    return merged


def _cut(line: str, header: list[tuple[str, int]]) -> list[str] | None:
    """Cut a row at the header positions; None if a value overflows its column."""
    values = []
    for index, (_, start) in enumerate(header):
        end = header[index + 1][1] if index + 1 < len(header) else None
        if index > 0 and start <= len(line) and start > 0 and line[start - 1] != " ":
            return None
        values.append(line[start:end].strip() if start < len(line) else "")
    return values


def _int_or_na(value: str, name: str, number: int, line: str) -> int | None:
    if value in ("-", ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise KbpInputError(
            f"line {number}: {name} is {value!r}, not a number or '-': {line.strip()!r}. "
            f"Is this `kafka-consumer-groups --describe` output?",
            line=number,
            column=name,
        ) from None


def parse_consumer_groups(
    text: str,
    *,
    time: Any = None,
    cluster: str = "default",
    group: str | None = None,
) -> pd.DataFrame:
    """Read ``kafka-consumer-groups.sh --describe`` output into a LAG frame.

    Parameters
    ----------
    text
        The tool's output: one group, several, ``--all-groups``, with or without
        ``--verbose`` (Kafka 2.x, 3.x and 4.x layouts); may be a log of repeated
        runs separated by timestamp lines (``date -Is``, ``date``, ``date -R``).
        Notices ("has no active members", "is rebalancing", "does not exist"),
        blank lines and the tool's log lines are skipped.
    time
        When the output was taken, for rows above the first timestamp line.
        Default: now. Naive times are taken as UTC.
    cluster
        Your name for the cluster.
    group
        Group id for old layouts without a GROUP column.

    Returns
    -------
    pandas.DataFrame
        A validated LAG frame with ``consumer_id``, ``host`` and ``client_id``
        (NA where the tool printed ``-``). Members with no partitions (printed
        with topic ``-``) have no row.

    Raises
    ------
    KbpInputError
        A line cannot be read: the message names the line number and shows it.

    Examples
    --------
    >>> import kbp_notebook as kbp
    >>> out = '''
    ... GROUP    TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  CONSUMER-ID  HOST
    ... billing  orders  0          90              100             10   -            -
    ... '''
    >>> int(kbp.parse_consumer_groups(out, time="2024-05-01T12:00Z")["lag"].iloc[0])
    10
    """
    if not isinstance(text, str):
        raise KbpInputError(
            f"parse_consumer_groups expects the tool's output as text, got "
            f"{type(text).__name__}; read the file with open(path).read().",
        )
    current = _start_time(time)
    header: list[tuple[str, int]] | None = None
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    seen: dict[tuple[pd.Timestamp, str, str, int], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n").expandtabs()
        stripped = line.strip()
        if not stripped:
            continue
        stamp = _usable_timestamp(line, number)
        if stamp is not None:
            current = stamp
            header = None
            continue
        if _NOTICE.match(stripped):
            continue
        found = _header(line)
        if found is not None:
            _check_header([name for name, _ in found], stripped, number, group=group)
            header = found
            continue
        if header is None:
            raise KbpInputError(
                f"line {number}: cannot read {stripped!r}: it is not a header, a row under "
                f"a header, a notice, or a timestamp line. Save the complete output of "
                f"`kafka-consumer-groups --describe` (with its header line).",
                line=number,
            )
        row = _row(line, header, number)
        topic = row["TOPIC"]
        if topic in ("-", "") or row["PARTITION"] in ("-", ""):
            continue  # a member without partitions
        group_id = row.get("GROUP", group or "")
        try:
            partition = int(row["PARTITION"])
        except ValueError:
            raise KbpInputError(
                f"line {number}: PARTITION is {row['PARTITION']!r}, not a number: {stripped!r}.",
                line=number,
                column="PARTITION",
            ) from None
        committed, log_end, expected = _offsets(row, number, line)
        key = (current, group_id, topic, partition)
        if key in seen:
            raise KbpInputError(
                f"line {number}: group {group_id!r} topic {topic!r} partition {partition} "
                f"already appeared on line {seen[key]} of the same run; separate repeated runs "
                f"with a timestamp line (e.g. `date -Is`).",
                line=number,
            )
        seen[key] = number
        columns["time"].append(current)
        columns["group"].append(group_id)
        columns["topic"].append(topic)
        columns["partition"].append(partition)
        columns["committed_offset"].append(committed)
        columns["log_end_offset"].append(log_end)
        columns["lag"].append(expected)
        for header_name, name in (
            ("CONSUMER-ID", "consumer_id"),
            ("HOST", "host"),
            ("CLIENT-ID", "client_id"),
        ):
            value = row.get(header_name, "-")
            columns[name].append(None if value in ("-", "") else value)

    return _lag_frame(columns, cluster)


_COLUMNS = (
    "time",
    "group",
    "topic",
    "partition",
    "committed_offset",
    "log_end_offset",
    "lag",
    "consumer_id",
    "host",
    "client_id",
)


def _start_time(time: Any) -> pd.Timestamp:
    """Return the time of rows above the first timestamp line: ``time`` in UTC, or now."""
    if time is None:
        return pd.Timestamp.now(tz="UTC")
    try:
        current = pd.Timestamp(time)
    except (ValueError, TypeError) as exc:
        raise KbpInputError(
            f"time={time!r} is not a timestamp ({exc}); pass e.g. '2024-05-01T12:00Z'.",
            column="time",
        ) from None
    return current.tz_localize("UTC") if current.tzinfo is None else current.tz_convert("UTC")


def _usable_timestamp(line: str, number: int) -> pd.Timestamp | None:
    """Return the time a timestamp line names (None for other lines); refuse bad times."""
    try:
        stamp = _timestamp(line, number)
        if stamp is not None and not _EARLIEST <= stamp <= _LATEST:
            raise ValueError("out of range")
    except (ValueError, OverflowError):
        raise KbpInputError(
            f"line {number}: timestamp {line.strip()[:80]!r} is not a usable time (outside "
            f"1678-2261 or invalid); fix the line or the clock that wrote it.",
            line=number,
        ) from None
    return stamp


def _check_header(names: list[str], stripped: str, number: int, *, group: str | None) -> None:
    """Refuse headers of other layouts (--members, --state) or missing offset columns."""
    if "TOPIC" not in names or "PARTITION" not in names:
        raise KbpInputError(
            f"line {number}: {stripped!r} is the header of the --members or --state "
            f"layout; parse_consumer_groups reads the offsets layout of "
            f"`kafka-consumer-groups --describe` (without --members/--state).",
            line=number,
        )
    for needed in ("CURRENT-OFFSET", "LOG-END-OFFSET"):
        if needed not in names:
            raise KbpInputError(
                f"line {number}: header {stripped!r} has no {needed} column; is this "
                f"`kafka-consumer-groups --describe` output?",
                line=number,
            )
    if "GROUP" not in names and group is None:
        raise KbpInputError(
            f"line {number}: this old layout has no GROUP column; pass "
            f"parse_consumer_groups(text, group='<group id>').",
            line=number,
        )


def _row(line: str, header: list[tuple[str, int]], number: int) -> dict[str, str]:
    """Cut a row under ``header`` by column position, else by whitespace."""
    stripped = line.strip()
    names = [name for name, _ in header]
    values = _cut(line, header)
    if values is None or _looks_wrong(values, names):
        tokens = stripped.split()
        values = tokens if len(tokens) == len(header) else None
    if values is None:
        raise KbpInputError(
            f"line {number}: cannot cut {stripped!r} into the columns {names} of the header "
            f"above it; is the output truncated or edited?",
            line=number,
        )
    return dict(zip(names, values, strict=True))


def _offsets(
    row: dict[str, str], number: int, line: str
) -> tuple[int | None, int | None, int | None]:
    """Return committed, log-end offsets and their difference; refuse a LAG that disagrees."""
    committed = _int_or_na(row["CURRENT-OFFSET"], "CURRENT-OFFSET", number, line)
    log_end = _int_or_na(row["LOG-END-OFFSET"], "LOG-END-OFFSET", number, line)
    lag = _int_or_na(row.get("LAG", "-"), "LAG", number, line)
    expected = None if committed is None or log_end is None else log_end - committed
    if lag is not None and expected is not None and lag != expected:
        raise KbpInputError(
            f"line {number}: LAG {lag} is not LOG-END-OFFSET - CURRENT-OFFSET "
            f"({expected}): {line.strip()!r}.",
            line=number,
            column="LAG",
        )
    return committed, log_end, expected


def _lag_frame(columns: dict[str, list[Any]], cluster: str) -> pd.DataFrame:
    """Return the validated LAG frame of the parsed rows."""
    frame = pd.DataFrame(
        {
            "time": pd.Series(columns["time"], dtype="datetime64[ns, UTC]"),
            "cluster": pd.Series([cluster] * len(columns["time"]), dtype="string"),
            "group": pd.Series(columns["group"], dtype="string"),
            "topic": pd.Series(columns["topic"], dtype="string"),
            "partition": pd.Series(columns["partition"], dtype="int32"),
            "committed_offset": pd.Series(columns["committed_offset"], dtype="Int64"),
            "log_end_offset": pd.Series(columns["log_end_offset"], dtype="Int64"),
            "lag": pd.Series(columns["lag"], dtype="Int64"),
            "consumer_id": pd.Series(columns["consumer_id"], dtype="string"),
            "host": pd.Series(columns["host"], dtype="string"),
            "client_id": pd.Series(columns["client_id"], dtype="string"),
        }
    )
    return validate_lag_frame(frame)


def _looks_wrong(values: list[str], names: list[str]) -> bool:
    """Tell whether a cut put non-numbers in numeric columns (padding not honoured)."""
    for name, value in zip(names, values, strict=True):
        if name in ("PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "LEADER-EPOCH"):
            if value not in ("-",) and not value.lstrip("-").isdigit():
                return True
    return False
