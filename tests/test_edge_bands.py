"""The edge-band measure the model card's Limits quote (benchmarks/edge_bands.py)."""

import numpy as np
from PIL import Image

from benchmarks.edge_bands import side_distances


def test_a_painted_strip_shows_on_its_side_only() -> None:
    rgb = np.full((64, 96, 3), 128, np.uint8)
    rgb[:, :8] = (200, 30, 30)  # a red band down the left edge
    d = side_distances(Image.fromarray(rgb), strip=8, inner=24)
    assert d[0] > 40
    # the top and bottom strips hold 8 red px of 96 in both the strip and the inside
    assert np.allclose(d[1:], 0, atol=1e-6)


def test_a_flat_image_has_no_bands() -> None:
    d = side_distances(Image.new("RGB", (40, 40), (10, 90, 200)), strip=8, inner=24)
    assert d.shape == (4,)
    assert np.allclose(d, 0, atol=1e-6)
