"""Charts format their numbers only through core.present.formats: no chart module writes a number format by hand
(a d3 spec in a hover or text template, an axis's tick format, a Python format spec in a title or a label)."""
from __future__ import annotations

import re

import pytest

from core.present import formats
from tests.conftest import ROOT

#: ``{x:,.2f}`` (f-strings) and ``%{y:.1%}`` (Plotly templates, where an f-string doubles the braces)
FORMAT_SPEC = re.compile(r"\{[^{}\s][^{}]*:[+~]?,?(?:\.\d+)?[a-zA-Z%]?\}")
#: ``tickformat=".0%"``, ``{"hoverformat": ",d"}``: a literal number format handed to an axis
LITERAL_AXIS_FORMAT = re.compile(r"""(?:tick|hover|value)format["']?\s*[:=]\s*["']""")
BUILTIN_FORMAT = re.compile(r"""\bformat\([^()]*,\s*["']""")
#: ``value_format = ",.2f"``: a d3 or Python spec kept in a string for later
BARE_SPEC = re.compile(r"""["'](?:[+~]?,(?:\.\d+)?[a-z%]?|[+~]?\.\d+[a-z%])["']""")


def _hand_formats(text: str) -> list[str]:
    return [m.group(0) for pattern in (FORMAT_SPEC, LITERAL_AXIS_FORMAT, BUILTIN_FORMAT, BARE_SPEC) for m in pattern.finditer(text)]


def test_no_chart_module_writes_a_number_format_by_hand():
    found = [f"{path.name}:{n}: {spec}" for path in sorted((ROOT / "core" / "charts").glob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) for spec in _hand_formats(line)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("line", [
    'hovertemplate="%{y}: %{x:,.0f} events"', 'f"%{{y}}: %{{x:.1%}} of {word}"', 'title=f"median {m:,.2f}"',
    'xaxis={"tickformat": ".0%"}', "fig.update_xaxes(tickformat=',d')", 'text=[format(v, ".3f") for v in values]',
    'f"{shares.iloc[i, j]:.0%}"', '"%{customdata[0]:,}"',
    'value_format = ",.2f" if by == "revenue" else ","',
])
def test_the_source_check_catches_hand_written_formats(line):
    assert _hand_formats(line)


@pytest.mark.parametrize("line", [
    'hovertemplate=f"%{{y}}: {hover(COUNT, \'x\')} events<extra>%{{fullData.name}}</extra>"',
    'hovertemplate=f"%{{x|{tick}}}: events"', 'xaxis={**axis(PERCENT), "rangemode": "tozero"}',
    'margin={"l": 10, "r": 10}', '", ".join(names)', '"""From :func:`core.analysis.queries.funnel`."""',
])
def test_the_source_check_leaves_helpers_dates_and_dicts_alone(line):
    assert not _hand_formats(line)


@pytest.mark.parametrize("kind, var, hundred, expected", [
    (formats.MONEY, "y", False, "%{y:,.2f}"), (formats.COUNT, "customdata[1]", False, "%{customdata[1]:,d}"),
    (formats.PERCENT, "x", False, "%{x:.1%}"), (formats.PERCENT, "z", True, "%{z:.1f} %"),
    (formats.RATIO, "z", False, "%{z:.2f}"), (formats.DAYS, "y", False, "%{y:.1f}"),
])
def test_hover_writes_the_kinds_chart_format(kind, var, hundred, expected):
    assert formats.hover(kind, var, hundred=hundred) == expected


@pytest.mark.parametrize("kind, hundred", [("currency", False), (formats.MONEY, True)])
def test_hover_refuses_an_unknown_kind_or_hundred_for_a_kind_not_percent(kind, hundred):
    with pytest.raises(ValueError, match=kind):
        formats.hover(kind, "y", hundred=hundred)


def test_axis_ticks_take_the_kinds_format_and_counts_keep_half_steps():
    assert formats.axis(formats.MONEY) == {"tickformat": ",.2f"}
    assert formats.axis(formats.PERCENT) == {"tickformat": ".1%"}
    assert formats.axis(formats.COUNT) == {"tickformat": ",~f"}
