"""The snapshot comparison: the same text, colours within a few units (another CPU's or library's rounding)."""

from conftest import COLOUR_TOLERANCE, svgs_match

SVG = '<rect fill="#994131" x="1"/><text class="terminal-r5">step 3</text><style>.r5 {{ fill: {} }}</style>'


def test_a_colour_one_unit_off_still_matches():
    assert svgs_match(SVG.format("#102030").replace("994131", "994231"), SVG.format("#102030"))


def test_a_colour_beyond_the_tolerance_differs():
    off = f"{0x41 + COLOUR_TOLERANCE + 1:02x}"
    assert not svgs_match(SVG.format("#102030").replace("994131", f"99{off}31"), SVG.format("#102030"))


def test_other_text_differs_whatever_the_colours():
    assert not svgs_match(SVG.format("#102030").replace("step 3", "step 4"), SVG.format("#102030"))
