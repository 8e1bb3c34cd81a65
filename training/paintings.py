"""The bundled paintings: who painted what, and the loss settings each one needs.

A painting's settings override the run's defaults (training.train) and are overridden in turn
by the command line's explicit flags. Found by training, not guessed: docs/model_card.md.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Painting:
    name: str  # file stem in the styles folder and the API's style name
    title: str
    artist: str
    date: str
    style_size: int | None = None  # the painting's longer side in training, px
    style_layers: str | None = None  # NAME:W,... taps of the loss network
    style_weight: float | None = None
    content_weight: float | None = None
    # Fractions of the width and height cut from the left, top, right and bottom before the
    # painting is analysed: what is not the picture (a frame, the card's edge). A strip the
    # statistics see, the network learns to paint, as a band along an edge of every result.
    trim: tuple[float, float, float, float] | None = None

    def loss_overrides(self) -> dict[str, object]:
        """The TrainConfig fields this painting sets, by name."""
        own = ("style_size", "style_layers", "style_weight", "content_weight")
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in own and getattr(self, f.name) is not None
        }


# Public-domain paintings (sources per file in the styles folder's SOURCES.md), in gallery order.
CATALOG = (
    Painting("starry_night", "The Starry Night", "Vincent van Gogh", "1889", style_weight=5),
    Painting(
        "great_wave",
        "The Great Wave off Kanagawa",
        "Katsushika Hokusai",
        "c. 1830-1832",
        style_weight=2,
    ),
    # A 40 px red strip, ruled off from the picture, runs down the scan's right edge: with it in
    # the statistics every result had a red band along its left edge.
    Painting(
        "the_scream",
        "The Scream",
        "Edvard Munch",
        "1893",
        style_weight=2,
        content_weight=12,  # at 4 the sky's strokes smeared across the buildings
        trim=(0, 0, 0.045, 0),
    ),
    # Kandinsky's and Picabia's planes: until step 45,671 at content weight 10 (6 drew a faint
    # diagonal lattice in flat areas, 12 kept the photo under a tint); at 4 with four times the
    # style weight (norms relearnt, then the whole network fine-tuned) they paint the sky
    # (docs/model_card.md).
    Painting("composition_vii", "Composition VII", "Wassily Kandinsky", "1913", style_weight=4),
    Painting(
        "udnie",
        "Udnie (Young American Girl, The Dance)",
        "Francis Picabia",
        "1913",
        style_layers="s1:1,s2:1,s4:1,s8:1",
        style_weight=4,
        style_size=256,  # Picabia's planes at half size fill a sky, as in the published outputs
    ),
    Painting("water_lilies", "Water Lilies", "Claude Monet", "1919", style_weight=4),
    # At 4 its wheat's yellow grows into a strip along the bottom edge.
    Painting(
        "wheat_field_with_cypresses",
        "Wheat Field with Cypresses",
        "Vincent van Gogh",
        "1889",
        style_weight=2,
    ),
    # Klimt's flat gold background and Seurat's figures fill the coarse taps' statistics: with
    # `s32` the network traded the photo for them within 500 steps; without it the photo stayed,
    # and without `s16` too Seurat's figures stopped being painted over everything. At 512 px the
    # mosaic and the dots are 1-2 px; at ~1000 px they are strokes (docs/*_painting_size.jpg).
    Painting(
        "the_kiss",
        "The Kiss",
        "Gustav Klimt",
        "1907-1908",
        style_layers="s1:1,s2:1,s4:1,s8:1,s16:1",
        style_size=1024,
        style_weight=6,
        content_weight=12,
    ),
    Painting(
        "grande_jatte",
        "A Sunday Afternoon on the Island of La Grande Jatte",
        "Georges Seurat",
        "1884-1886",
        style_layers="s1:1,s2:1,s4:1,s8:1",
        style_size=1000,
        style_weight=8,
        content_weight=6,
    ),
    Painting(
        "shipwreck_of_the_minotaur",
        "The Shipwreck of the Minotaur",
        "J. M. W. Turner",
        "c. 1810",
        style_weight=4,
    ),
    # The source names no title; SOURCES.md dates it to his Paris cubist period.
    Painting(
        "mondrian_cubist_composition",
        "Cubist Composition",
        "Piet Mondrian",
        "c. 1912-1914",
        style_weight=4,
    ),
)
BY_NAME = {p.name: p for p in CATALOG}
