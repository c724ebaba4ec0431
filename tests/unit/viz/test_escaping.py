"""User-named strings (group ids, topics, event text) never reach a figure unescaped."""

from __future__ import annotations

import pytest

import kbp_notebook as kbp
from kbp_notebook import viz
from kbp_notebook.analysis.correlation import correlate
from tests.helpers.synthetic_dataset import HOSTILE_GROUP, all_strings

BUILDERS = {
    "plot_lag": lambda ds: viz.plot_lag(ds.lag, events=ds.events, trend=kbp.lag_trend(ds.lag),
                                        partitions=True),
    "plot_lag_trend": lambda ds: kbp.lag_trend(ds.lag).plot(),
    "plot_lag_status": lambda ds: kbp.lag_status(ds.lag).plot(),
    "plot_time_lag": lambda ds: kbp.time_lag(ds.lag).plot(),
    "plot_correlation": lambda ds: correlate(
        kbp.flush_latency_vs_lag(ds).aligned.set_index("time")["x"],
        kbp.flush_latency_vs_lag(ds).aligned.set_index("time")["y"],
        x_name=HOSTILE_GROUP, y_name="lag", max_shift="1min", n_surrogates=20).plot(),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_hostile_group_name_is_escaped(dataset, name):
    fig = BUILDERS[name](dataset)
    strings = list(all_strings(fig.to_plotly_json()))
    assert not [s for s in strings if "<img" in s], name
    assert not [s for s in strings if "%{y}" in s and "&lt;img" in s], name
    assert any("&lt;img src=x onerror=alert(1)&gt;&amp;" in s for s in strings), name


def test_esc_neutralises_tags_and_template_fields():
    assert viz.esc("<b>x</b> %{y}") == "&lt;b&gt;x&lt;/b&gt; %&#123;y}"
