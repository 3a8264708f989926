"""The cache's JSON files read by their schema (core/schema.py): every value of
the wrong type, not finite, or below its least value is refused naming its key,
inside lists and objects too."""

from __future__ import annotations

import json
import math

import pytest

from clipig_gallery.core.schema import (
    CacheFormatError,
    CacheSummary,
    MethodSummary,
    RankingSummary,
    RenderRecord,
)

ROW = {"run": 3, "group": "best", "initial_sim": 31.5, "final_sim": 40.25,
       "initial_image": "short/run-3.png", "final_image": "detail/run-3.png"}
RANKING = {"prompt": "a penguin made of piano.", "animal": "penguin", "thing": "piano",
           "stem": "penguin-of-piano", "method": 1, "runs": 512, "best": 6, "worst": 2,
           "rows": [ROW], "csv": {"initial": "initial.csv"},
           "epochs": {"short": 10, "detail": None}, "seconds": {"short_per_run": 0.5}}


def from_text(reader, text: str):
    # Python's json reads NaN and Infinity, as a hand-edited file may hold them
    return reader(json.loads(text), "f.json")


def test_a_good_ranking_summary_reads():
    summary = RankingSummary.from_json(RANKING, "f.json")
    assert summary.epochs == {"short": 10, "detail": None}
    assert summary.rows[0].final_sim == 40.25


@pytest.mark.parametrize(("change", "message"), [
    ({"epochs": {"short": math.inf}}, "epochs['short'] must be an integer or null, not inf"),
    ({"epochs": {"short": "10"}}, "epochs['short'] must be an integer or null, not '10'"),
    ({"seconds": {"short_per_run": math.nan}},
     "seconds['short_per_run'] must be a finite number, not nan"),
    ({"seconds": {"short_per_run": -0.5}},
     "seconds['short_per_run'] must be at least 0, not -0.5"),
    ({"csv": {"initial": 5}}, "csv['initial'] must be a string, not 5"),
    ({"rows": [{**ROW, "initial_sim": -math.inf}]}, "rows[0].initial_sim must be a finite "
                                                    "number, not -inf"),
])
def test_a_bad_value_inside_an_object_or_list_is_named(change, message):
    with pytest.raises(CacheFormatError) as info:
        RankingSummary.from_json({**RANKING, **change}, "f.json")
    assert str(info.value) == f"f.json: {message}"


@pytest.mark.parametrize(("text", "message"), [
    ('{"seconds": Infinity}', "seconds must be a finite number, not inf"),
    ('{"seconds": -1}', "seconds must be at least 0, not -1"),
    ('{"sim": NaN}', "sim must be a finite number or null, not nan"),
    ('{"best_of": {"short_seconds": -0.1}}', "best_of.short_seconds must be at least 0"),
])
def test_a_record_value_that_is_not_finite_or_below_its_least_is_named(text, message):
    with pytest.raises(CacheFormatError, match=f"^f.json: {message}"):
        from_text(RenderRecord.from_json, text)


def test_a_summary_with_an_infinite_duration_is_named():
    text = '{"methods": {"1": {"seconds_per_image": Infinity}}}'
    with pytest.raises(CacheFormatError, match=r"^f.json: methods\['1'\].seconds_per_image "
                                               "must be a finite number, not inf"):
        from_text(CacheSummary.from_json, text)
    ok = from_text(CacheSummary.from_json, '{"methods": {"1": {"seconds_per_image": 0}}}')
    assert ok.methods[1] == MethodSummary(seconds_per_image=0)
