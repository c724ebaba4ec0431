import json
import subprocess
import sys

import kbp_notebook.analysis as analysis

FORBIDDEN = (
    "kafka",
    "plotly",
    "ipywidgets",
    "kbp_notebook.collect",
    "kbp_notebook.viz",
    "kbp_notebook.widgets",
)

SCRIPT = """
import importlib.util, json, sys
import kbp_notebook.analysis as analysis
touched = []
for name in analysis.__all__:
    getattr(analysis, name)
    touched.append(name)
from kbp_notebook.analysis import _series, capacity, correlation, diagnosis  # noqa
from kbp_notebook.analysis import drain, lag_seconds, status, trend  # noqa
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('kafka', 'plotly', 'ipywidgets')
                or m.startswith(('kbp_notebook.collect', 'kbp_notebook.viz',
                                 'kbp_notebook.widgets')))
print(json.dumps({"names": touched, "loaded": loaded}))
"""


def test_analysis_imports_no_kafka_plotly_widgets_or_upper_layers():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    mine = {
        "lag_trend",
        "LagTrend",
        "lag_status",
        "LagStatus",
        "time_lag",
        "TimeLag",
        "time_to_drain",
        "DrainForecast",
        "capacity_plan",
        "CapacityPlan",
        "correlate",
        "Correlation",
        "flush_latency_vs_lag",
        "diagnose",
        "Diagnosis",
    }
    assert mine <= set(report["names"])
    assert report["loaded"] == [], f"analysis pulled in {report['loaded']}"


def test_the_script_would_notice_a_forbidden_import():
    # guard against a vacuous check: the same detection sees plotly when it is imported
    done = subprocess.run(
        [sys.executable, "-c", "import plotly\n" + SCRIPT],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert any(name.startswith("plotly") for name in report["loaded"])


def test_exports_resolve_to_the_named_objects():
    for name in ("lag_trend", "lag_status", "time_lag", "time_to_drain", "capacity_plan"):
        assert callable(getattr(analysis, name)), name
    assert set(FORBIDDEN).isdisjoint(analysis.__all__)
