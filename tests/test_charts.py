"""Tests of the SVG charts and the Pareto front the reports draw."""
from __future__ import annotations

import numpy as np
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.charts import Bar, BarChart, Series, XYChart, bar_chart, fmt_num, linear_ticks, log_ticks, xy_chart
from reports.pareto import pareto_front
from report_fakes import assert_chart, charts, legend


def test_linear_ticks_are_nice_and_cover_the_range():
    ticks = linear_ticks(0.13, 9.7)
    assert ticks[0] <= 0.13 and ticks[-1] >= 9.7
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0]) and steps[0] in (1.0, 2.0)


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(1e-6, 1e6))
def test_linear_ticks_cover_any_range(lo, span):
    ticks = linear_ticks(lo, lo + span)
    slack = 1e-6 * span  # float noise at the ends is allowed
    assert ticks[0] <= lo + slack and ticks[-1] >= lo + span - slack and 2 <= len(ticks) <= 12


def test_log_ticks_are_decades_over_wide_ranges_and_add_2_5_over_narrow():
    assert log_ticks(3e-3, 4e2) == [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]
    assert log_ticks(1.5, 30.0) == [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]


@settings(max_examples=50, deadline=None)
@given(st.floats(1e-12, 1e12), st.floats(1.0001, 1e15))
def test_log_ticks_cover_any_positive_range(lo, ratio):
    ticks = log_ticks(lo, lo * ratio)
    assert ticks[0] <= lo * (1 + 1e-9) and ticks[-1] >= lo * ratio * (1 - 1e-9)
    assert ticks == sorted(ticks) and len(ticks) <= 16


def test_fmt_num_uses_si_prefixes_outside_fractions():
    assert [fmt_num(v) for v in (0, 2.5e14, 1500, 0.004, 12)] == ["0", "250T", "1.5k", "0.004", "12"]
    assert [fmt_num(v) for v in (0.8, 2e-5, -0.25)] == ["0.8", "20µ", "-0.25"]  # an accuracy of 0.8, not 800m


def test_xy_chart_has_title_axes_legend_hover_and_skips_non_positive_points_on_log_axes():
    chart = XYChart("Latency & co", "p (tokens)", "time (s)",
                    [Series("a<b", [1, 10, 0, -1], [0.1, 0.2, 0.3, 0.4], hover=["h1", "h2", "h3", "h4"])],
                    x_log=True, y_log=True)
    div = charts(BeautifulSoup(xy_chart(chart), "html.parser"))[0]
    assert_chart(div, "latency & co")
    assert [t.get_text() for t in div.find_all("title")] == ["h1", "h2"]  # 0 and -1 cannot sit on a log axis
    assert legend(div) == ["a<b"]


def test_empty_chart_says_no_data():
    assert "no data" in xy_chart(XYChart("Empty", "x", "y", []))


def test_bar_chart_draws_stacked_segments_and_the_limit_line():
    div = charts(BeautifulSoup(bar_chart(BarChart("Memory", "GiB", [Bar("m1", {"weights": 40, "kv": 10})], limit=80,
                                                   limit_label="capacity")), "html.parser"))[0]
    rects = div.find_all("rect", class_="bar")
    assert len(rects) == 2 and float(rects[1]["width"]) < float(rects[0]["width"])
    assert legend(div) == ["weights", "kv", "capacity"]


def test_pareto_front_keeps_only_undominated_points():
    cost, acc = [1.0, 2.0, 3.0, 2.5, 4.0], [0.5, 0.7, 0.6, 0.8, 0.8]
    assert pareto_front(cost, acc, maximize_value=True) == [0, 1, 3]
    assert pareto_front([3.0, 1.0, 2.0], [1.0, 3.0, 2.0]) == [1, 2, 0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 10)), min_size=1, max_size=30))
def test_no_point_dominates_a_pareto_point(points):
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    front = pareto_front(xs, ys)
    for i in front:
        assert not any(xs[j] <= xs[i] and ys[j] <= ys[i] and (xs[j], ys[j]) != (xs[i], ys[i]) for j in range(len(xs)))


