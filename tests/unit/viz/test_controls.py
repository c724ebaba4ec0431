"""choice_figure: precomputed figures behind plotly's own dropdown or slider."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from kbp_notebook.viz import choice_figure, esc, with_readout


def _figure(name: str, ys: list[float], *, shared: bool = True) -> go.Figure:
    fig = go.Figure()
    if shared:
        fig.add_trace(go.Scatter(x=[0, 1, 2], y=[5, 5, 5], name="history"))
    fig.add_trace(go.Scatter(x=[0, 1, 2], y=ys, name=f"line {name}"))
    fig.update_layout(title_text=f"Lag of {name}", height=400,
                      annotations=[{"text": f"note {name}", "x": 0, "y": 0}])
    return fig


def test_dropdown_shows_each_choice_with_its_traces_title_and_annotations():
    choices = [("a", _figure("a", [1, 2, 3])), ("b", _figure("b", [3, 2, 1]))]
    fig = choice_figure(choices, label="group", control="dropdown", active=1)
    names = [t.name for t in fig.data]
    assert names == ["history", "line a", "line b"]  # the shared trace is stored once
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["group: a", "group: b"]
    assert fig.layout.updatemenus[0].active == 1
    assert [t.visible for t in fig.data] == [True, False, True]
    visible_a, layout_a = buttons[0].args
    assert visible_a["visible"] == [True, True, False]
    assert layout_a["title.text"] == "Lag of a"
    assert layout_a["annotations"][0]["text"] == "note a"
    assert buttons[1].args[1]["title.text"] == "Lag of b"
    assert fig.layout.title.text == "Lag of b"
    assert fig.layout.meta["kbp_control"] == {"label": "group", "kind": "dropdown",
                                              "choices": ["a", "b"]}
    assert fig.layout.height == 440  # room for the dropdown above the plot


def test_slider_steps_and_legendonly_traces_keep_their_own_visibility():
    one, two = _figure("1", [1, 1, 1]), _figure("2", [2, 2, 2])
    two.data[1].visible = "legendonly"
    fig = choice_figure([("1", one), ("2", two)], label="consumers", control="slider")
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["1", "2"]
    assert steps[1].args[0]["visible"] == [True, False, "legendonly"]
    assert fig.layout.sliders[0].currentvalue.prefix == "consumers: "
    assert fig.layout.updatemenus == ()


def test_axis_ranges_follow_the_choice():
    fixed = _figure("fixed", [1, 2, 3]).update_yaxes(range=[0, 10])
    free = _figure("free", [1, 2, 3])
    fig = choice_figure([("fixed", fixed), ("free", free)], label="x")
    fixed_layout = fig.layout.updatemenus[0].buttons[0].args[1]
    free_layout = fig.layout.updatemenus[0].buttons[1].args[1]
    assert fixed_layout["yaxis.range"] == [0, 10] and fixed_layout["yaxis.autorange"] is False
    assert free_layout["yaxis.autorange"] is True


def test_no_choice_or_a_bad_active_index_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        choice_figure([], label="x")
    with pytest.raises(ValueError, match="active=3"):
        choice_figure([("a", _figure("a", [1]))], label="x", active=3)


def test_readout_goes_under_the_title_in_lines_and_hostile_labels_stay_escaped():
    fig = with_readout(_figure("a", [1, 2, 3]), "first part; " + "x" * 120 + "; third")
    title = fig.layout.title.text
    assert title.startswith("Lag of a<br>") and title.count("<br>") == 3
    assert fig.layout.height == 400 + 3 * 17
    hostile = "<img src=x onerror=alert(1)>"
    merged = choice_figure([(esc(hostile), _figure("h", [1])), ("b", _figure("b", [2]))],
                           label="group")
    assert "<img" not in merged.layout.updatemenus[0].buttons[0].label
