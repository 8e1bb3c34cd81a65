"""Export the arbitrary-style graphs (issue #31): the frozen EfficientNet-Lite0 encoder and the
trained decoders (training/decoders.py), each proven against PyTorch under ONNX Runtime.

    python -m export.arbitrary --decoder runs/decoder_s4/last.pt --out /tmp/arbitrary

`encoder.onnx`: `image` uint8 (1, H, W, 3), H and W multiples of 16, in; the taps the decoders
read, float (1, C, H/s, W/s), out, named `features_LEVEL`. `decoder_LEVEL.onnx`: those
features in, `image` uint8 (1, H, W, 3) out. Between the two, at request time, the photo's
features take a painting's statistics (WCT); the metadata names the method, level and encoder.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from stylefn.contract import arbitrary_features_name as features_name
from training.decoders import Decoder, DecoderConfig
from training.efficientnet import NAME, EfficientNetLite0, SamePadConv, build_efficientnet_lite0
from training.errors import UsageError
from training.torch_files import load_torch_file

log = logging.getLogger("export")
OPSET = 18
TOLERANCE = 1  # grey levels between ONNX Runtime and PyTorch


class StaticSamePad(nn.Module):
    """A SamePadConv with its padding fixed for even input sides, which the encoder's
    multiple-of-16 inputs give every stride-2 stage. The loss network computes "SAME" padding
    from the input size with math.ceil, which the tracer records as a constant-folded formula
    that, at any other size, crops the input back to the example's."""

    def __init__(self, conv: SamePadConv):
        super().__init__()
        k, stride = conv.kernel_size[0], conv.stride[0]
        total = k - 1 if stride == 1 else k - 2  # (ceil(n / 2) - 1) * 2 + k - n for even n
        self.pads = [total // 2, total - total // 2] * 2
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.Conv2d.forward(self.conv, F.pad(x, self.pads))


class Taps(nn.Module):
    """uint8 (1, H, W, 3) -> the loss network's taps `levels`, float (1, C, H/s, W/s) each."""

    def __init__(self, net: EfficientNetLite0, levels: list[str]):
        super().__init__()
        self.net, self.levels = net.eval(), levels

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        taps = self.net(image.permute(0, 3, 1, 2).float())
        return tuple(taps[level] for level in self.levels)


class Encoder(Taps):
    """Taps for export: H and W multiples of 16, "SAME" padding fixed (StaticSamePad)."""

    def __init__(self, net: EfficientNetLite0, levels: list[str]):
        super().__init__(copy.deepcopy(net), levels)
        for module in list(self.net.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, SamePadConv):
                    setattr(module, name, StaticSamePad(child))


class UInt8Decoder(nn.Module):
    """Features -> uint8 (1, H, W, 3)."""

    def __init__(self, decoder: Decoder):
        super().__init__()
        self.decoder = decoder.eval()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        y = self.decoder(features).round().clamp(0, 255)
        return y.to(torch.uint8).permute(0, 2, 3, 1)


def _export(
    module: nn.Module, example: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]
) -> None:
    # Every tensor's own dimension names: a name shared by two taps would tell ONNX Runtime
    # that their sides are equal.
    axes = {
        name: {1: "H", 2: "W"} if name == "image" else {2: f"{name}_h", 3: f"{name}_w"}
        for name in inputs + outputs
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's chatter; parity below proves the file
        torch.onnx.export(
            module, (example,), str(path), dynamo=False, input_names=inputs,
            output_names=outputs, dynamic_axes=axes, opset_version=OPSET,
        )  # fmt: skip


def _metadata(path: Path, entries: dict[str, str]) -> None:
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, entries)
    onnx.save(model, str(path))


def load_decoder(path: str | Path) -> tuple[Decoder, dict]:
    state = load_torch_file(path, "--decoder", kind="training.train_decoder checkpoint")
    if not isinstance(state, dict) or "decoder_config" not in state:
        raise UsageError(f"{path}: not a checkpoint of training.train_decoder")
    decoder = Decoder(DecoderConfig(**state["decoder_config"]))
    decoder.load_state_dict(state["model"])
    return decoder.eval(), state


def check_parity(module: nn.Module, path: Path, example: torch.Tensor) -> float:
    """Largest difference between ONNX Runtime and PyTorch on `example` (uint8 outputs in grey
    levels, float outputs relative to their range)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = module(example)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        e = e.numpy().astype(np.float64)
        scale = 1.0 if e.dtype == np.uint8 or g.dtype == np.uint8 else max(1e-6, np.abs(e).max())
        worst = max(worst, float(np.abs(e - g.astype(np.float64)).max() / scale))
    return worst


def export_arbitrary(decoders: list[Path], out: Path) -> list[Path]:
    """encoder.onnx for the decoders' levels, and each decoder_LEVEL.onnx; raises UsageError
    when ONNX Runtime and PyTorch disagree."""
    out.mkdir(parents=True, exist_ok=True)
    loaded = [load_decoder(d) for d in decoders]
    levels = [state["decoder_config"]["level"] for _, state in loaded]
    # eval() on the wrapper itself: the exporter restores its mode afterwards, recursively, and a
    # wrapper left in training mode would put Lite0's batch norms back into training.
    encoder = Encoder(build_efficientnet_lite0(), levels).eval()
    photo = torch.randint(0, 256, (1, 96, 128, 3), dtype=torch.uint8)
    written = [out / "encoder.onnx"]
    _export(encoder, photo, written[0], ["image"], [features_name(level) for level in levels])
    _metadata(written[0], {"method": "wct", "encoder": NAME, "levels": json.dumps(levels)})
    reference = Taps(build_efficientnet_lite0(), levels)  # with the loss network's own padding
    for size in ((96, 128), (160, 224)):  # the traced size and another
        other = torch.randint(0, 256, (1, *size, 3), dtype=torch.uint8)
        worst = check_parity(reference, written[0], other)
        if worst > 1e-3:
            raise UsageError(f"encoder parity failed at {size}: {worst:.2g} of the features' range")
    with torch.no_grad():
        taps = encoder(photo)
    for (decoder, state), level, features in zip(loaded, levels, taps, strict=True):
        path = out / f"decoder_{level}.onnx"
        wrapper = UInt8Decoder(decoder).eval()
        _export(wrapper, features, path, [features_name(level)], ["image"])
        _metadata(path, {
            "method": "wct", "encoder": NAME, "level": level, "training_steps": str(state["step"]),
            "decoder_config": json.dumps(state["decoder_config"]),
        })  # fmt: skip
        worst = check_parity(wrapper, path, features)
        if worst > TOLERANCE:
            raise UsageError(f"decoder {level} parity failed: {worst:g} grey levels")
        log.info("wrote %s (parity: %g grey levels)", path, worst)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--decoder",
        action="append",
        required=True,
        help="a train_decoder checkpoint; repeat per level",
    )
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    try:
        for path in export_arbitrary([Path(d) for d in args.decoder], args.out):
            print(f"wrote {path}")
    except UsageError as e:
        p.exit(2, f"error: {e}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
