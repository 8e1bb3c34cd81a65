"""The full-resolution graphs: a painting made at a reduced size brought to the photo's own size
and finished there, in ONNX Runtime (the function's CPU threads, or CUDA on a GPU) instead of
numpy on one core. Built with onnx.helper; export/upsample_parity.py checks them against the
numpy reference (export/upsample_reference.py, on ../shared/data/eval's photos by default)
before anything is written.

    python -m export.upsample_graph                 # checks parity, writes function/graphs/
    python -m export.upsample_graph --photos DIR --limit 4   # parity on other photos

Two graphs (contract.py names their inputs and outputs):

- GUIDE_GRAPH, once per request: the guided filter's per-channel slopes, fitted at <= COEFF_SIDE
  px (small, whatever the photo's size) and returned on the painting's grid.
- UPSAMPLE_GRAPH, once per strip of the full-size photo: the strip's rows of the painting, the
  small photo's luminance and the slopes, resampled to full size, the photo's detail added and
  the finish applied. Strips bound the float buffers (12 bytes a pixel per three channels) and
  keep them in cache: measured on 2 cores, ten elementwise passes over a 12 MP photo took
  128 ms in 16-row strips against 565 ms in one piece.

Resampling is separable, and done in the cheaper order. First along the rows, on only the rows
of the small grid the strip falls between (a quarter of the strip's rows at 4x), by Resize with
half-pixel centres over the whole width; then to the strip's own rows, by a small matrix
product whose weights the graph computes from the strip's position, so every row lands exactly
where a resize of the whole puts it: strips join without seams. The painting uses the bicubic
kernel (a = -0.5, Pillow's BICUBIC: Resize has no Lanczos, and its fast (antialias) cubic path
is ~2.7 ns a pixel and channel where its tf_crop_and_resize mode took ~460), the slopes linear
along the rows (as the reference) and cubic across them; the slopes come on the painting's
grid from the guide graph. Measured on a 12 MP photo, single thread on a loaded 2-core machine:
6.5 ms a 64-row strip, 11.5 ms resampling the other way round.

The finish is linear up to a clip, so it is folded in on the small grid: with
p = preserve_color (the photo's chroma, the result's luminance: for a linear luma, the luminance
change added to every channel) and s = strength, the finished pixel is
(1 - s) photo + clip(s p photo + up(B) + up(A) * L, 0, 255 s), where L is the photo's
luminance, B = s M painting - (s M slope) * Lu with Lu the small photo's luminance (resampling
that product stands for the product of two resamplings: the slopes are smooth), A = s M slope -
s p, and M = (1 - p) I + p (rows of luma weights). Only that line runs at full size, and for
the default finish (s = 1, p = 0) only up(B) + up(A) * L.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from export.parity import PHOTO_EXTENSIONS, default_photo_dir
from export.upsample_parity import TOLERANCE, check, compare, format_report, upsampler
from export.upsample_reference import COEFF_SIDE, EPS, LUMA, MAX_SLOPE, MIN_SLOPE, RADIUS
from stylefn.contract import (
    GRAPH_DIR,
    GUIDE_GRAPH,
    GUIDE_INPUTS,
    GUIDE_OUTPUT,
    INPUT_NAME,
    OUTPUT_NAME,
    UPSAMPLE_GRAPH,
    UPSAMPLE_INPUTS,
    UPSAMPLE_OUTPUT,
)
from stylefn.styles.mix import one_style_feed

OPSET = 18  # Resize's antialias (its fast cubic path, and the fit to COEFF_SIDE) is new in 18
IR_VERSION = 8  # what opset 18 needs; onnx 1.23 writes 14 by default, newer than ORT 1.26 reads
CUBIC_A = -0.5  # Keys' cubic with Pillow's BICUBIC coefficient (Resize's default is -0.75)
ROOT = Path(__file__).resolve().parents[1]
PARITY_MODEL = "bundled.fast.onnx"  # any style would do: the graphs take its first as is
FLOAT, DOUBLE, INT64, UINT8 = (
    TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64, TensorProto.UINT8,
)  # fmt: skip


class _Builder:
    """Nodes and constants of one graph; every node's output is named after the node."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix  # a branch's names must not shadow the enclosing graph's
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def op(self, kind: str, *inputs: str, **attrs: Any) -> str:
        name = f"{self.prefix}{kind.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(kind, list(inputs), [name], name=name, **attrs))
        return name

    def ops(self, kind: str, *inputs: str, outputs: int, **attrs: Any) -> list[str]:
        name = f"{self.prefix}{kind.lower()}_{len(self.nodes)}"
        names = [f"{name}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(kind, list(inputs), names, name=name, **attrs))
        return names

    def const(self, value: object, dtype: type = np.float32) -> str:
        name = f"{self.prefix}const_{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def output(self, node: str, name: str) -> None:
        self.nodes.append(helper.make_node("Identity", [node], [name]))

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", x, to=to)

    def dim(self, x: str, axis: int) -> str:
        """Dimension `axis` of x, an int64 1-element tensor."""
        return self.op("Shape", x, start=axis, end=axis + 1)

    def model(self, name: str, inputs: list, outputs: list, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits, doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.producer_name = "styleserve export.upsample_graph"
        onnx.checker.check_model(model, full_check=True)
        return model


def _box(b: _Builder, x: str) -> str:
    """Mean over a (2 RADIUS + 1)^2 window of (1, C, H, W), edges replicated (the reference's)."""
    r, k = RADIUS, 2 * RADIUS + 1
    padded = b.op("Pad", x, b.const([0, 0, r, r, 0, 0, r, r], np.int64), mode="edge")
    return b.op("AveragePool", padded, kernel_shape=[k, k])


def _luma_nchw(b: _Builder, rgb: str) -> str:
    """(1, 3, H, W) -> (1, 1, H, W) with the BT.601 weights. Mul and ReduceSum: a 1x1 Conv
    took 19 ms at 1024x768 on 2 cores, most of it converting to and from its blocked layout."""
    weighted = b.op("Mul", rgb, b.const(np.reshape(LUMA, (1, 3, 1, 1))))
    return b.op("ReduceSum", weighted, b.const([1], np.int64), keepdims=1)


def guide_graph() -> onnx.ModelProto:
    """The guided filter's slopes, fitted at COEFF_SIDE at most (He & Sun's subsampling: the
    slopes are smooth, and the filter's window is RADIUS px at that size)."""
    b = _Builder()

    painted_in, small_in = GUIDE_INPUTS
    painted = b.cast(painted_in, FLOAT)  # (h, w, 3), channels last until the fit
    small_luma = b.op("MatMul", b.cast(small_in, FLOAT), b.const(np.reshape(LUMA, (3, 1))))
    h, w = (b.cast(b.dim(painted, axis), FLOAT) for axis in (0, 1))
    scale = b.op("Min", b.const([1.0]), b.op("Div", b.const([COEFF_SIDE]), b.op("Max", h, w)))

    def fitted(side: str) -> str:  # max(1, round(side * scale)); Round is half to even, as Python
        return b.cast(b.op("Max", b.op("Round", b.op("Mul", side, scale)), b.const([1.0])), INT64)

    # An antialiased linear resize stands for the reference's box resize (at scale 1 it is
    # the identity), then channels first for the box filters; the filter works on 0..1, as
    # EPS assumes.

    def fit(hwc: str, channels: int) -> str:  # (h, w, C) -> (1, C, fh, fw)
        sizes = b.op("Concat", b.const([1], np.int64), fitted(h), fitted(w),
                     b.const([channels], np.int64), axis=0)  # fmt: skip
        x = b.op("Unsqueeze", hwc, b.const([0], np.int64))
        x = b.op("Resize", x, "", "", sizes, mode="linear", antialias=1)
        return b.op("Mul", b.op("Transpose", x, perm=[0, 3, 1, 2]), b.const(1 / 255))

    p, guide = fit(painted, 3), fit(small_luma, 1)
    stats = b.op("Concat", guide, p, b.op("Mul", guide, p), b.op("Mul", guide, guide), axis=1)
    mean_i, mean_p, mean_ip, mean_ii = b.ops(
        "Split", _box(b, stats), b.const([1, 3, 3, 1], np.int64), axis=1, outputs=4
    )
    cov = b.op("Sub", mean_ip, b.op("Mul", mean_i, mean_p))
    var = b.op("Sub", mean_ii, b.op("Mul", mean_i, mean_i))
    slope = b.op("Div", cov, b.op("Add", var, b.const(EPS)))
    slope = b.op("Clip", slope, b.const(-MAX_SLOPE), b.const(MAX_SLOPE))
    # Where the painting barely follows the photo, grey detail tops its luminance up to
    # MIN_SLOPE: sharp edges, and no colour a channel's own slope did not ask for.
    top_up = b.op("Relu", b.op("Sub", b.const(MIN_SLOPE), _luma_nchw(b, slope)))
    slope = _box(b, b.op("Add", slope, top_up))
    # Back on the painting's grid (bilinear, as the reference upsamples them), so the strips
    # resample one grid: the slopes are smooth, so this costs them nothing.
    hwc = b.op("Transpose", slope, perm=[0, 2, 3, 1])
    sizes = b.op("Concat", b.const([1], np.int64), b.dim(painted, 0), b.dim(painted, 1),
                 b.const([3], np.int64), axis=0)  # fmt: skip
    hwc = b.op("Resize", hwc, "", "", sizes, mode="linear")
    b.output(b.op("Squeeze", hwc, b.const([0], np.int64)), GUIDE_OUTPUT)
    return b.model(
        "guide",
        [helper.make_tensor_value_info(n, UINT8, ["h", "w", 3]) for n in GUIDE_INPUTS],
        [helper.make_tensor_value_info(GUIDE_OUTPUT, FLOAT, ["h", "w", 3])],
        "painting, small photo -> the guided filter's per-channel slopes on the painting's grid",
    )


def _cubic(b: _Builder, d: str) -> str:
    """Keys' cubic kernel at distances d >= 0, a = CUBIC_A."""
    a = CUBIC_A
    d2 = b.op("Mul", d, d)
    near = b.op("Add", b.op("Mul", b.op("Sub", b.op("Mul", d, b.const(a + 2)), b.const(a + 3)), d2),
                b.const(1.0))  # fmt: skip
    far = b.op("Sub", b.op("Mul", b.op("Add", b.op("Mul", b.op("Sub", b.op("Mul", d, b.const(a)),
               b.const(5 * a)), d), b.const(8 * a)), d), b.const(4 * a))  # fmt: skip
    outer = b.op("Where", b.op("Less", d, b.const(2.0)), far, b.const(0.0))
    return b.op("Where", b.op("Less", d, b.const(1.0)), near, outer)


def _rows(b: _Builder, grid: str, top: str, rows: str, height: str) -> tuple[str, str, str]:
    """Where rows top .. top + rows - 1 of a `height`-row image fall on `grid` (g, ...) at
    half-pixel centres: the grid rows they fall between, start and stop (int64 [1]), and a
    (rows, stop - start) matrix of cubic weights over them (normalised where the image's edge
    cuts the kernel, as Pillow does)."""
    g = b.dim(grid, 0)
    scale = b.op("Div", b.cast(g, DOUBLE), b.cast(height, DOUBLE))
    first = b.cast(top, DOUBLE)
    at = b.op("Add", first, b.cast(b.op("Range", b.const(0, np.int64), b.op("Squeeze", rows),
              b.const(1, np.int64)), DOUBLE))  # fmt: skip
    # (rows,): where each row's centre falls, in grid rows
    source = b.op("Sub", b.op("Mul", b.op("Add", at, b.const(0.5, np.float64)), scale),
                  b.const(0.5, np.float64))  # fmt: skip
    lo = b.op("Floor", b.op("ReduceMin", source, keepdims=1))
    hi = b.op("Floor", b.op("ReduceMax", source, keepdims=1))
    start = b.op("Max", b.cast(b.op("Sub", lo, b.const([1.0], np.float64)), INT64),
                 b.const([0], np.int64))  # fmt: skip
    stop = b.op("Min", b.cast(b.op("Add", hi, b.const([3.0], np.float64)), INT64), g)
    taps = b.cast(b.op("Range", b.op("Squeeze", start), b.op("Squeeze", stop),
                       b.const(1, np.int64)), DOUBLE)  # fmt: skip
    distance = b.op("Abs", b.op("Sub", b.op("Unsqueeze", taps, b.const([0], np.int64)),
                                b.op("Unsqueeze", source, b.const([1], np.int64))))  # fmt: skip
    weights = _cubic(b, b.cast(distance, FLOAT))
    weights = b.op("Div", weights, b.op("ReduceSum", weights, b.const([1], np.int64), keepdims=1))
    return start, stop, weights


def _pick(b: _Builder, grid: str, start: str, stop: str) -> str:
    """Rows start .. stop - 1 of `grid` (g, gw, C), as float."""
    return b.cast(b.op("Slice", grid, start, stop, b.const([0], np.int64)), FLOAT)


def _widen(b: _Builder, x: str, width: str, mode: str) -> str:
    """(m, gw, C) -> (1, m, width, C), resampled along the row with half-pixel centres:
    "cubic" (the painting) or "linear" (the slopes, as the reference)."""
    x = b.op("Unsqueeze", x, b.const([0], np.int64))
    sizes = b.op("Concat", b.op("Shape", x, end=2), width, b.op("Shape", x, start=3), axis=0)
    # exclude_outside: the kernel is renormalised where the edge cuts it, as Pillow does.
    cubic = (
        {"cubic_coeff_a": CUBIC_A, "antialias": 1, "exclude_outside": 1} if mode == "cubic" else {}
    )
    return b.op("Resize", x, "", "", sizes, mode=mode, **cubic)


def _tall(b: _Builder, weights: str, x: str) -> str:
    """(1, m, W, C) grid rows -> (n, W, C) strip rows, by the (n, m) weights."""
    flat = b.op("Reshape", x, b.op("Concat", b.op("Shape", x, start=1, end=2),
                b.const([-1], np.int64), axis=0))  # fmt: skip
    shape = b.op("Concat", b.op("Shape", weights, end=1), b.op("Shape", x, start=2), axis=0)
    return b.op("Reshape", b.op("MatMul", weights, flat), shape)


def upsample_graph() -> onnx.ModelProto:
    """One strip: its rows of the painting, luminance and slopes resampled to full size, the
    photo's detail added, and the finish (module docstring)."""
    b = _Builder()
    photo_in, top_in, height_in, painted_in, small_in, slope_in, strength, preserve = (
        UPSAMPLE_INPUTS
    )
    top, height = (b.op("Unsqueeze", x, b.const([0], np.int64)) for x in (top_in, height_in))
    rows, width = b.dim(photo_in, 0), b.dim(photo_in, 1)
    # The finish (module docstring): s M as the matrix pixel rows are multiplied by, and s p.
    s, p = strength, preserve
    keep = b.op("Mul", b.const(np.eye(3)), b.op("Sub", b.const(1.0), p))
    grey = b.op("Mul", b.const(np.repeat(np.reshape(LUMA, (3, 1)), 3, 1)), p)
    matrix = b.op("Mul", b.op("Add", keep, grey), s)  # (3, 3): pixel row @ matrix
    shift = b.op("Mul", s, p)
    # Luminance three channels wide, by a matrix product: Mul broadcasting along the last axis
    # is ONNX Runtime's slow case (as slow as a full pass at a quarter of the pixels).
    luma = b.const(np.repeat(np.reshape(LUMA, (3, 1)), 3, 1))
    # On the grid rows the strip falls between (a quarter of its rows for a 4x enlargement):
    # the slopes and the painting finished, and the painting less the slopes times the small
    # photo's luminance, so that full size needs no upsampled luminance (resampling that
    # product stands for the product of two resamplings: the slopes are smooth, so they differ
    # by a fraction of a grey level). Then resampled along the rows to full width, where Resize
    # does a quarter of the rows it would after the rows, and to the strip's rows.
    start, stop, weights = _rows(b, painted_in, top, rows, height)
    small_luma = b.op("MatMul", _pick(b, small_in, start, stop), luma)  # (m, w, 3)
    slope = b.op("MatMul", _pick(b, slope_in, start, stop), matrix)  # (m, w or 1, 3)
    painted = b.op("MatMul", _pick(b, painted_in, start, stop), matrix)
    base = b.op("Sub", painted, b.op("Mul", slope, small_luma))
    slope = b.op("Sub", slope, shift)
    # Full size, the only part whose cost grows with the photo: two resamplings and a few
    # passes, fewer for the default finish (strength 1, no colour preservation). Otherwise the
    # styled image is clipped before strength mixes it with the photo, as a mix of two images
    # (s times it, clipped to 255 s). QuantizeLinear rounds and saturates to uint8.
    photo = b.cast(photo_in, FLOAT)
    slope = _tall(b, weights, _widen(b, slope, width, "linear"))
    styled = b.op("Mul", slope, b.op("MatMul", photo, luma))
    styled = b.op("Add", styled, _tall(b, weights, _widen(b, base, width, "cubic")))
    plain = b.op("And", b.op("GreaterOrEqual", s, b.const(1.0)), b.op("Equal", p, b.const(0.0)))
    zero, one, top_value = b.const(0, np.uint8), b.const(1.0), b.const(255.0)
    branches = []
    for name, finished in (("plain_", False), ("mixed_", True)):
        branch = _Builder(name)
        x = styled
        if finished:
            x = branch.op("Add", x, branch.op("Mul", photo, shift))
            x = branch.op("Clip", x, b.const(0.0), branch.op("Mul", s, top_value))
            x = branch.op("Add", x, branch.op("Mul", photo, branch.op("Sub", one, s)))
        branch.output(branch.op("QuantizeLinear", x, one, zero), f"{name}result")
        out = helper.make_tensor_value_info(f"{name}result", UINT8, None)
        branches.append(helper.make_graph(branch.nodes, name + "finish", [], [out]))
    result = b.op("If", plain, then_branch=branches[0], else_branch=branches[1])
    b.output(result, UPSAMPLE_OUTPUT)
    scalar = helper.make_tensor_value_info
    return b.model(
        "upsample",
        [
            scalar(photo_in, UINT8, ["n", "W", 3]),
            scalar(top_in, INT64, []),
            scalar(height_in, INT64, []),
            scalar(painted_in, UINT8, ["h", "w", 3]),
            scalar(small_in, UINT8, ["h", "w", 3]),
            scalar(slope_in, FLOAT, ["h", "sw", 3]),  # (h, 1, 3) zeros where unused
            scalar(strength, FLOAT, []),
            scalar(preserve, FLOAT, []),
        ],
        [scalar(UPSAMPLE_OUTPUT, UINT8, ["n", "W", 3])],
        "photo strip, its position, painting, small photo, slopes, finish -> finished strip",
    )


def write(out_dir: Path) -> tuple[Path, Path]:
    """Both graphs into `out_dir`: the guide graph's path, then the strip graph's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    guide, strips = out_dir / GUIDE_GRAPH, out_dir / UPSAMPLE_GRAPH
    onnx.save(guide_graph(), guide)
    onnx.save(upsample_graph(), strips)
    return guide, strips


def _photos(photo_dir: Path, limit: int) -> list[tuple[str, np.ndarray]]:
    paths = sorted(p for p in photo_dir.iterdir() if p.suffix.lower() in PHOTO_EXTENSIONS)
    if not paths:
        raise SystemExit(f"no photos in {photo_dir}; pass --photos DIR")
    return [(p.stem, np.asarray(Image.open(p).convert("RGB"))) for p in paths[:limit]]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", type=Path, default=ROOT / "function" / GRAPH_DIR)
    p.add_argument("--photos", type=Path, default=default_photo_dir())
    p.add_argument("--limit", type=int, default=24, help="photos measured, in name order")
    p.add_argument("--model", type=Path, default=ROOT / "function" / "models" / PARITY_MODEL,
                   help="the style network that paints the parity photos")  # fmt: skip
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write(Path(tmp))
        network = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
        style = one_style_feed(network)
        cases = compare(
            upsampler(*paths),
            _photos(args.photos, args.limit),
            lambda rgb: network.run([OUTPUT_NAME], {INPUT_NAME: rgb[None], **style})[0][0],
        )
        print(format_report(cases))
        summary = check(cases)  # raises before anything is written
        print("parity over all cases (grey levels):", summary, "tolerance:", TOLERANCE)
        for path in paths:
            shutil.copy(path, args.out_dir / path.name)
            print(f"wrote {args.out_dir / path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
