"""The status line breaks between its parts, never inside one ('(25 / taken)' at 160 columns)."""

from stepviz.tui.widgets.status_line import broken_between_parts

LOOKING_BACK = ("toy · cpu float32 · txt2img · predicts eps · ddim (vp, order 1) · step 12/25 · t 521  sigma 1.736  "
                "alpha_cumprod 0.2490 · guidance 7.5 · looking back (25 taken)")


def test_a_text_that_fits_stays_one_row():
    assert broken_between_parts(LOOKING_BACK, 160) == LOOKING_BACK


def test_a_longer_text_breaks_between_parts():
    rows = broken_between_parts(LOOKING_BACK, 100).split("\n")
    assert len(rows) == 2 and all(len(row) <= 100 for row in rows)
    assert rows[1].endswith("looking back (25 taken)") and " · ".join(rows) == LOOKING_BACK


def test_what_the_row_already_holds_counts():
    rows = broken_between_parts(LOOKING_BACK, 160, used=24).split("\n")  # ' ▶ PLAYING (p pauses) ' before it
    assert rows[-1] == "looking back (25 taken)" and len(rows[0]) + 24 <= 160
