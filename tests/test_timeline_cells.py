"""The timeline keeps its step numbers on a small terminal: cells never shrink below a number and a space;
when the steps do not all fit, the window scrolls with the step looked at."""

from stepviz.tui.widgets.timeline import cell_layout


def test_thirty_steps_at_80_columns_keep_their_numbers_and_scroll():
    cell, first = cell_layout(30, 78, viewed=29)
    assert cell == 3  # "30" and a space (it was 2: blocks without numbers)
    visible = 78 // cell
    assert first == 30 - visible and first <= 29 < first + visible
    assert cell_layout(30, 78, viewed=0) == (3, 0)


def test_wide_terminals_keep_wide_cells_and_three_digit_runs_fit():
    assert cell_layout(25, 156, viewed=3) == (4, 0)
    cell, first = cell_layout(100, 78, viewed=50)
    assert cell == 4 and first <= 50 < first + 78 // 4
