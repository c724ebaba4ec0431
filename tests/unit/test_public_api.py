"""The exported names are exactly the intended ones, and each resolves."""

import subprocess
import sys

import kbp_notebook

INTENDED = {
    "KbpError", "KbpConnectionError", "KbpInputError", "KbpDataError",
    "Dataset", "validate_lag_frame", "validate_metrics_frame",
    "LagCollector", "parse_consumer_groups", "PrometheusSource", "client_metrics",
    "log_dir_usage", "load_sample", "list_samples", "sample_path", "read_dataset",
    "write_dataset", "analyse_recording", "topic_configs",
    "lag_trend", "lag_status", "time_lag", "time_to_drain", "capacity_plan", "correlate",
    "flush_latency_vs_lag", "diagnose", "incidents", "retention_risk",
    "__version__",
}


def test_exported_names_are_the_intended_ones():
    assert set(kbp_notebook.__all__) == INTENDED


def test_every_exported_name_resolves():
    for name in INTENDED:
        assert getattr(kbp_notebook, name) is not None, name


def test_error_tree():
    assert issubclass(kbp_notebook.KbpConnectionError, kbp_notebook.KbpError)
    assert issubclass(kbp_notebook.KbpInputError, kbp_notebook.KbpError)
    assert issubclass(kbp_notebook.KbpDataError, kbp_notebook.KbpError)
    err = kbp_notebook.KbpConnectionError("down", address="127.0.0.1:9")
    assert err.address == "127.0.0.1:9" and err.context == {"address": "127.0.0.1:9"}


def test_plain_import_is_light():
    code = (
        "import sys, kbp_notebook; "
        "heavy = [m for m in ('kafka', 'plotly', 'ipywidgets', 'scipy') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_functions_stay_callable_after_their_modules_are_imported():
    import kbp_notebook.analysis.correlation  # noqa: F401
    import kbp_notebook.analysis.diagnosis  # noqa: F401
    import kbp_notebook.analysis.lag_seconds  # noqa: F401

    for name in ("correlate", "diagnose", "time_lag", "lag_trend", "time_to_drain"):
        assert callable(getattr(kbp_notebook, name)), name
