"""``kbp report``: one self-contained HTML file, code hidden unless asked, nothing fetched."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kbp_notebook.errors import KbpInputError
from kbp_notebook.report import (
    NOTEBOOKS,
    PLOTLY_BUNDLE_SHA256,
    PLOTLY_JS_VERSION,
    _parse_parameter,
    _redact_url,
    ensure_plotly_bundle,
    find_notebook,
    notebook_parameters,
    source_parameters,
)

KBP = Path(sys.executable).with_name("kbp")
CODE_INPUT = re.compile(r"""class="[^"]*\bhl-ipython3\b""")  # highlighted code
# A tag that would load something from a host (plotly.js's source mentions URLs in strings;
# the browser tests check that nothing is requested at all).
REMOTE_SRC = re.compile(
    r"""<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)\s*=\s*["'](?:https?:)?//""",
    re.IGNORECASE,
)


def _render(source, out, *extra):
    done = subprocess.run([str(KBP), "report", str(source), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.notebook
@pytest.mark.slow
def test_cli_writes_one_offline_file_and_prints_its_path(synthetic_recording, tmp_path):
    out = tmp_path / "sub" / "capacity.html"
    done = _render(synthetic_recording, out, "--notebook", "02")
    assert done.stdout.strip().splitlines()[-1] == str(out.resolve())
    html = out.read_text(encoding="utf-8")
    assert not REMOTE_SRC.search(html), REMOTE_SRC.search(html)
    # plotly.js's cartesian bundle inlined exactly once; no full plotly.js, no widget manager
    assert html.count(f"plotly.js (cartesian - minified) v{PLOTLY_JS_VERSION}") == 1
    assert html.count("plotly.js v") == 0
    assert "data:text/javascript;base64," not in html
    assert "application/vnd.jupyter.widget-state+json" not in html
    assert "require.min.js" not in html and "tex-svg" not in html  # no require.js, no MathJax
    # a normal run says where it wrote, nothing else (no kernel warnings)
    assert done.stderr.strip().splitlines() == [line for line in done.stderr.strip().splitlines()
                                                 if line.startswith("wrote ")], done.stderr
    assert not CODE_INPUT.search(html)  # code hidden by default
    assert "02_capacity_planning" in html
    with_code = tmp_path / "with-code.html"
    _render(synthetic_recording, with_code, "--notebook", "02", "--include-code")
    assert CODE_INPUT.search(with_code.read_text(encoding="utf-8"))


def test_sources_map_to_notebook_parameters(tmp_path):
    assert source_parameters("producer-burst") == {"source": "producer-burst"}
    assert source_parameters(str(tmp_path)) == {"source": None, "recording": str(tmp_path)}
    prom = source_parameters("http://127.0.0.1:9090", start="2026-01-01T00:00:00Z",
                             end="2026-01-01T01:00:00Z")
    assert prom["prometheus_url"] == "http://127.0.0.1:9090" and prom["source"] is None
    assert prom["prometheus_start"] == "2026-01-01T00:00:00Z" and prom["prometheus_step"] == "15s"
    assert source_parameters("127.0.0.1:9092,127.0.0.1:9093") == {
        "source": None, "bootstrap_servers": "127.0.0.1:9092,127.0.0.1:9093"}


def test_credentials_never_reach_the_report_banner():
    assert _redact_url("https://admin:s3cret@prom.example:9090/x?y=1") == \
        "https://prom.example:9090/x?y=1"
    assert _redact_url("http://127.0.0.1:9090") == "http://127.0.0.1:9090"


def test_notebooks_are_found_by_name_or_number():
    for name in NOTEBOOKS:
        assert find_notebook(name).name == f"{name}.ipynb"
        assert find_notebook(name[:2]) == find_notebook(name)
    with pytest.raises(KbpInputError, match="01_incident_postmortem"):
        find_notebook("99_nope")


def test_plotly_bundle_is_the_pinned_file_and_a_tampered_cache_is_refetched(tmp_path,
                                                                           monkeypatch):
    bundle = ensure_plotly_bundle()
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == PLOTLY_BUNDLE_SHA256
    assert bundle.stat().st_size < 1.7e6  # the partial bundle, not plotly's full 4.8 MB
    monkeypatch.setenv("KBP_CACHE_DIR", str(tmp_path))
    tampered = tmp_path / bundle.parent.name / bundle.name
    tampered.parent.mkdir(parents=True)
    tampered.write_text("alert('not plotly')")
    fetched = ensure_plotly_bundle()  # npm pack from the registry, integrity checked
    assert fetched == tampered
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == PLOTLY_BUNDLE_SHA256


def test_plotly_bundle_matches_the_plotly_js_that_plotly_python_draws_with():
    from plotly.offline import get_plotlyjs_version

    assert get_plotlyjs_version() == PLOTLY_JS_VERSION


def _kbp(*args, timeout=120):
    return subprocess.run([str(KBP), "report", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_unknown_parameter_is_an_error_listing_the_notebooks_parameters(tmp_path):
    done = _kbp("producer-burst", "--out", tmp_path / "x.html", "-p", "typo=1")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "'typo'" in done.stderr
    for name in notebook_parameters(find_notebook("01")):
        assert name in done.stderr
    assert not (tmp_path / "x.html").exists()
    live = notebook_parameters(find_notebook("04"))
    assert {"duration_s", "every_s", "command_config"} <= set(live)


@pytest.mark.parametrize("source", [
    ["http://127.0.0.1:9", "--start", "2026-01-01T00:00Z", "--end", "2026-01-01T01:00Z"],
    ["127.0.0.1:9", "--notebook", "04"],
])
def test_an_unreachable_source_is_one_line_before_any_kernel_starts(source, tmp_path):
    # port 9 (discard) is closed on loopback: connection refused at once
    done = _kbp(*source, "--out", tmp_path / "x.html")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "127.0.0.1:9" in done.stderr and "Cannot reach" in done.stderr
    assert "IPKernelApp" not in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.html").exists()


def test_unknown_source_is_a_clear_error_before_any_kernel_starts(tmp_path):
    done = subprocess.run([str(KBP), "report", "no-such-sample", "--out", str(tmp_path / "x.html")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "neither a bundled sample" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.html").exists()


def test_report_parameters_are_json_or_text_and_paths_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _parse_parameter("every_s=2.5") == ("every_s", 2.5)
    assert _parse_parameter('groups=["a", "b"]') == ("groups", ["a", "b"])
    assert _parse_parameter("cluster=prod") == ("cluster", "prod")
    # the notebook runs in notebooks/, so a path is made absolute where kbp was called
    assert _parse_parameter("command_config=client.properties") == (
        "command_config",
        str(tmp_path / "client.properties"),
    )
    with pytest.raises(KbpInputError, match="NAME=VALUE"):
        _parse_parameter("command_config")
