"""The vectorized paths of the readers give what the cell-by-cell rules give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cppgraph.data.canonical import _csv_row_lines, _row_lines
from cppgraph.data.dataset import _first_missing, _missing_mask, _parse_plain_numbers, parse_numbers
from cppgraph.errors import DataError
from cppgraph.normalize import _lookup


def test_parse_numbers_reads_strings_as_float_does():
    cells = ["1", " 2.5 ", "1e3", "1_000", "-0", "+7", "3.0000000000000004"]
    got = parse_numbers(pd.Series(cells + [np.nan], dtype=object))
    np.testing.assert_array_equal(got[:-1], [float(c) for c in cells])
    assert np.isnan(got[-1])
    np.testing.assert_array_equal(parse_numbers(pd.Series([1, 2.5, 3])), [1.0, 2.5, 3.0])
    # these columns take the vectorized path; the cell-by-cell rules decide the others
    for plain in (cells + [np.nan], [1, 2.5, 3], [np.nan, np.nan]):
        assert _parse_plain_numbers(np.array(plain, dtype=object), True) is not None
    for mixed in (["1", "nan"], ["1", "inf"], ["1", " "], [True, 1.0], ["1", 2]):
        assert _parse_plain_numbers(np.array(mixed, dtype=object), True) is None
    assert _parse_plain_numbers(np.array(["1", np.nan], dtype=object), False) is None


@pytest.mark.parametrize("cells, line, what", [
    (["1", "nan", "2"], 11, "is not"),
    (["1", "2", "inf"], 12, "infinite"),
    ([1.0, np.inf], 11, "infinite"),
    (["1", "x"], 11, "is not"),
    (["1", np.nan], 11, "missing"),
    ([True, False], 10, "is not"),
])
def test_parse_numbers_names_the_first_bad_cell(cells, line, what):
    with pytest.raises(DataError) as info:
        parse_numbers(pd.Series(cells, dtype=object), file="s.csv", column="score",
                      lines=np.arange(10, 10 + len(cells)), allow_missing=False)
    assert info.value.line == line and what in str(info.value)


def test_first_missing():
    assert _first_missing(pd.Series(["a", "b"])) is None
    assert _first_missing(pd.Series(["a", "  ", None])) == 1
    assert _first_missing(pd.Series(["a", None, ""])) == 1
    assert _first_missing(np.array([1, np.nan], dtype=object)) == 1
    assert _missing_mask(pd.Series(["a", "", pd.NA, 0, " x "])).tolist() == [
        False, True, True, False, False]
    # repeated cells, and columns with nothing but missing cells or nothing at all
    assert _missing_mask(pd.Series(["a", " ", "a", None, " "])).tolist() == [
        False, True, False, True, True]
    assert _missing_mask(np.array([None, np.nan], dtype=object)).tolist() == [True, True]
    assert _missing_mask(np.array([], dtype=object)).tolist() == []
    # numeric columns as pandas reads them: NaN is missing, numbers are not
    assert _missing_mask(pd.Series([0.5, np.nan, -1.0])).tolist() == [False, True, False]
    assert _missing_mask(pd.Series([1, 0])).tolist() == [False, False]
    assert _missing_mask(pd.Series([0.5, None], dtype="Float64")).tolist() == [False, True]
    assert _first_missing(pd.Series([0.5, 1.0, np.nan])) == 2


@pytest.mark.parametrize("text", [
    "a,b\n1,2\n3,4\n", "a,b\n1,2\n\n3,4", "a,b\n\n\n1,2\n   \n3,4\n", "a,b\n1,2\n ,\n3,4\n",
    "a\nx\n\ny\n  \n", "\ufeffa,b\n1,2\n", "a,b\n1,2\n\t\n3,4\n",
])
def test_row_lines_without_quotes_match_the_csv_module(tmp_path, text):
    path = tmp_path / "f.csv"
    path.write_text(text, encoding="utf-8")
    expected = _csv_row_lines(path)
    assert _row_lines(path, len(expected)).tolist() == expected


def test_row_lines_of_a_quoted_field_over_two_lines(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text('a,b\n1,"x\ny"\n2,z\n', encoding="utf-8")
    assert _row_lines(path, 2).tolist() == [2, 4]


def test_lookup_finds_positions_and_names_an_unknown_key():
    table = {"gsm8k": 2, "mmlu": 0, "arc": 1}
    np.testing.assert_array_equal(_lookup(["arc", "gsm8k", "arc"], table, "task"), [1, 2, 1])
    assert _lookup([], table, "task").tolist() == []
    # a Series, an Index and an array as they come, each name repeated
    for keys in (pd.Series(["mmlu", "arc", "mmlu"]), pd.Index(["mmlu", "arc", "mmlu"]),
                 np.array(["mmlu", "arc", "mmlu"])):
        assert _lookup(keys, table, "task").tolist() == [0, 1, 0]
    with pytest.raises(DataError, match="'mmlu2'.*did you mean 'mmlu'"):
        _lookup(["arc", "mmlu2"], table, "task")
