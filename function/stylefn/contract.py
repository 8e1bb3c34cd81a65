"""The contract between export/ (which writes the model files) and this package (which serves
them), defined once: export/onnx_export.py and export/painting.py import these names, and
tests/test_contract.py checks a real export against what the function reads.

No imports beyond the standard library: the training image (infra/Dockerfile.train) copies this
file alone, without the function's dependencies.
"""

from __future__ import annotations

# The style model's graph: `image` uint8 (N, H, W, 3) RGB in, `stylized` uint8 (N, H, W, 3) out.
INPUT_NAME = "image"
OUTPUT_NAME = "stylized"

# NAME.ARCH.tiles.onnx beside a model: the same network for painting in tiles. Besides `image`
# it takes the instance-norm statistics to use, float (2, S), and whether to use them, float ();
# it returns the statistics it computed, float (N, 2, S).
TILES_SUFFIX = ".tiles.onnx"
STATS_INPUT = "norm_stats"
USE_STATS_INPUT = "use_norm_stats"
STATS_OUTPUT = "norm_stats_out"

# A multi-style graph (one network, several styles: conditional instance norm) also takes the
# weight of each style, float (S,), in the order its STYLES_KEY metadata lists them; the function
# sends a mix that sums to 1. A single-style graph has no such input.
STYLE_WEIGHTS_INPUT = "style_weights"
# Metadata entry of a multi-style model: JSON list of its styles in order, each {name, title,
# artist, style_image_sha256, loss_settings}.
STYLES_KEY = "styles"

# The network architectures a model's `arch` metadata may name (training.model.PRESETS), in the
# order /styles lists them: johnson is the full network, fast the light one for CPU serving.
ARCHS = ("johnson", "fast")

# Metadata entry: base64 JPEG of the painting's thumbnail, embedded at export. A multi-style
# model has one per style, under style_painting_key(name).
PAINTING_KEY = "painting_jpeg"


def style_painting_key(name: str) -> str:
    return f"{PAINTING_KEY}:{name}"


# The metadata_props entries the function reads (styles/catalog.py), besides PAINTING_KEY, which
# is optional. A model without `arch` is a johnson one (exported before `fast` existed).
METADATA_KEYS = (
    "name",
    "arch",
    "title",
    "artist",
    "precision",
    "training_steps",
    "loss_net",
    "image_size",
)

# The full-resolution graphs (export/upsample_graph.py), in function/GRAPH_DIR: never in a models
# folder, where every *.onnx is a style. GUIDE_GRAPH runs once per request: the painting and the
# photo it painted, uint8 (h, w, 3), to the guided filter's slopes, float (h, w, 3).
# UPSAMPLE_GRAPH runs once per strip of the full-size photo, uint8 (n, W, 3): with the strip's
# first row and the photo's height (int64 scalars), the painting, the small photo, the slopes,
# strength and preserve_color (float scalars), it returns the finished strip, uint8 (n, W, 3).
GRAPH_DIR = "graphs"
GUIDE_GRAPH = "guide.onnx"
GUIDE_INPUTS = ("painted", "photo_small")
GUIDE_OUTPUT = "slope"
UPSAMPLE_GRAPH = "upsample.onnx"
UPSAMPLE_INPUTS = (
    "photo", "top", "height", *GUIDE_INPUTS, GUIDE_OUTPUT, "strength", "preserve_color",
)  # fmt: skip
UPSAMPLE_OUTPUT = "result"

# The arbitrary-style graphs (export/arbitrary.py), in GRAPH_DIR/ARBITRARY_DIR: encoder.onnx,
# `image` uint8 (1, H, W, 3) with H and W multiples of 16 in, the features of each level its
# `levels` metadata lists (JSON) out, float (1, C, H/s, W/s); decoder_LEVEL.onnx, those features
# in, `image` uint8 (1, H, W, 3) out.
ARBITRARY_DIR = "arbitrary"


def arbitrary_features_name(level: str) -> str:
    return f"features_{level}"
