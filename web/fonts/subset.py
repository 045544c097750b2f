"""Writes the demo's typeface, UbuntuLight-derivative-hashguard.ttf: egui's Ubuntu Light cut to
the scripts a user's text can bring (Latin, Greek, Cyrillic, punctuation, arrows, mathematical
operators) without TrueType hinting bytecode (egui's rasteriser then autohints), renamed as the
Ubuntu Font Licence asks of a modified version (UFL.txt beside it). 362 KB (171 KB gzipped) ->
about 136 KB (55 KB gzipped) of the browser module.

Usage (fontTools from PyPI):
    python3 web/fonts/subset.py ~/.cargo/registry/src/*/epaint_default_fonts-0.37.0/fonts/Ubuntu-Light.ttf
"""

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

RANGES = [
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x024F),  # Latin-1 Supplement, Latin Extended-A and -B
    (0x0370, 0x03FF),  # Greek (the demo's ε)
    (0x0400, 0x04FF),  # Cyrillic
    (0x2000, 0x206F),  # General Punctuation (— – · …)
    (0x20A0, 0x20CF),  # Currency symbols
    (0x2100, 0x214F),  # Letterlike symbols
    (0x2190, 0x21FF),  # Arrows
    (0x2200, 0x22FF),  # Mathematical operators (≤ ≥ ∞ ±)
    (0x25A0, 0x25FF),  # Geometric shapes
]
NAME = "Ubuntu Light derivative hashguard"


def main(source: str) -> None:
    font = TTFont(source)
    options = subset.Options()
    options.hinting = False
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[c for a, b in RANGES for c in range(a, b + 1)])
    subsetter.subset(font)
    names = font["name"]
    for record in list(names.names):
        if record.nameID in (1, 3, 4, 16):
            record.string = NAME
        elif record.nameID == 6:
            record.string = NAME.replace(" ", "-")
    out = Path(__file__).with_name("UbuntuLight-derivative-hashguard.ttf")
    font.save(out)
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
