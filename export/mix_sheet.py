"""A sheet of style mixes: two styles of one multi-style network at 0/25/50/75/100 %, the
weights the function feeds for `style=A:0.75,B:0.25` and so on.

    python -m export.mix_sheet                    # docs/mix.jpg, three pairs of bundled styles
    python -m export.mix_sheet --pairs starry_night:the_scream --photo my_photo.jpg --out mix.jpg

A row per pair: painting A, the photo painted at B's share 0, 25, 50, 75 and 100 %, painting B
(the model's own thumbnail when the painting file is not on this machine).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from export.gallery import ROOT, Painter, grid, label, load_styles, painting, tile

SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_PAIRS = "starry_night:the_scream,udnie:great_wave,composition_vii:water_lilies"
EVAL_PHOTO = ROOT.parent / "shared/data/eval/kodim23.png"
SAMPLE_PHOTO = ROOT / "function/static/sample.jpg"


def parse_pairs(text: str) -> list[tuple[str, str]]:
    pairs = [tuple(p.split(":")) for p in text.split(",")]
    if any(len(p) != 2 or not all(p) for p in pairs):
        raise ValueError(f"--pairs {text!r}: write A:B,C:D (style names)")
    return pairs  # type: ignore[return-value]


def mixed(a: Painter, b: Painter, share: float) -> Painter:
    """The painter of (1 - share) A + share B: both one-hot rows of the same network."""
    assert a.weights is not None and b.weights is not None
    return Painter(a.session, a.meta, (1 - share) * a.weights + share * b.weights)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m export.mix_sheet", description=__doc__.split("\n")[0]
    )
    p.add_argument("--models", type=Path, default=ROOT / "function/models")
    p.add_argument("--pairs", default=DEFAULT_PAIRS, help="A:B,C:D: styles of one network")
    p.add_argument(
        "--photo", type=Path, help="default: Kodak 23 if ../shared has it, else the sample"
    )
    p.add_argument("--styles-dir", type=Path, default=ROOT.parent / "shared/data/styles")
    p.add_argument("--out", type=Path, default=ROOT / "docs/mix.jpg")
    args = p.parse_args(argv)
    try:
        pairs = parse_pairs(args.pairs)
    except ValueError as e:
        p.error(str(e))
    photo_path = args.photo or (EVAL_PHOTO if EVAL_PHOTO.is_file() else SAMPLE_PHOTO)
    photo = Image.open(photo_path).convert("RGB")
    styles = load_styles(args.models)
    rows = []
    for a, b in pairs:
        missing = [n for n in (a, b) if n not in styles]
        if missing:
            p.error(f"no style {missing} in {args.models}; it has {sorted(styles)}")
        if styles[a].weights is None or styles[a].session is not styles[b].session:
            p.error(f"{a} and {b} are not styles of one multi-style network: they cannot mix")
        row = [label(tile(painting(styles[a], args.styles_dir, a)), a)]
        for share in SHARES:
            result = mixed(styles[a], styles[b], share)(photo)
            row.append(label(tile(result), f"{b} {share:.0%}"))
        row.append(label(tile(painting(styles[b], args.styles_dir, b)), b))
        rows.append(row)
        print(f"{a} : {b}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid(rows).save(args.out, quality=85, optimize=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
