"""The export-serve contract (stylefn/contract.py) from both sides: a model exported by export/
has exactly the graph names, files and metadata the function reads, and the function reads no
metadata key the contract does not name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export.onnx_export import write_model
from stylefn import contract
from stylefn.styles import catalog, tiling
from stylefn.styles.registry import StyleRegistry


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, style_path, tmp_path_factory) -> Path:
    """A folder with one style exported with its painting (and so its tile graph)."""
    folder = tmp_path_factory.mktemp("contract")
    write_model(tiny_checkpoint, folder / "stripes.onnx", title="Stripes", painting=style_path)
    return folder


def graph_names(path: Path) -> tuple[list[str], list[str]]:
    graph = onnx.load(str(path)).graph
    return [i.name for i in graph.input], [o.name for o in graph.output]


def test_graph_names_are_the_contracts(exported):
    assert graph_names(exported / "stripes.onnx") == ([contract.INPUT_NAME], [contract.OUTPUT_NAME])
    tiles = exported / ("stripes" + contract.TILES_SUFFIX)
    assert graph_names(tiles) == (
        [contract.INPUT_NAME, contract.STATS_INPUT, contract.USE_STATS_INPUT],
        [contract.OUTPUT_NAME, contract.STATS_OUTPUT],
    )


def test_function_finds_the_tile_graph_and_painting(exported):
    (path,) = catalog.model_paths(exported)  # the tile graph is not taken for a style model
    (style,) = catalog.load_catalog([path]).values()
    model = style.models[contract.ARCHS[0]]
    assert model.tiles_path == exported / ("stripes" + contract.TILES_SUFFIX)
    assert style.painting is not None and style.painting.jpeg.startswith(b"\xff\xd8")


def test_function_runs_both_graphs_by_the_contracts_names(exported):
    registry = StyleRegistry(exported)
    choice = registry.get("stripes")
    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)
    assert registry.stylize(choice, rgb).shape == rgb.shape
    tiles = ort.InferenceSession(str(choice.model.tiles_path), providers=["CPUExecutionProvider"])
    assert tiling.paint_in_tiles(tiles, rgb, max_pixels=32 * 32).shape == rgb.shape


class Recording(dict[str, str]):
    """A model's metadata that notes in `read` every key read from it."""

    def __init__(self, data: dict[str, str], read: set[str]):
        super().__init__(data)
        self.read = read

    def get(self, key, default=None):  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)


def test_export_writes_every_key_the_function_reads(exported, monkeypatch):
    props = {p.key: p.value for p in onnx.load(str(exported / "stripes.onnx")).metadata_props}
    assert set(contract.METADATA_KEYS) | {contract.PAINTING_KEY} <= set(props)

    read: set[str] = set()
    read_metadata = catalog.read_metadata
    monkeypatch.setattr(catalog, "read_metadata", lambda p: Recording(read_metadata(p), read))
    styles = catalog.load_catalog(catalog.model_paths(exported))
    for style in styles.values():
        style.describe(contract.ARCHS[0])
    assert read <= set(contract.METADATA_KEYS) | {contract.PAINTING_KEY}
    assert read >= {"name", "arch", "title", contract.PAINTING_KEY}


def test_contract_needs_only_the_standard_library():
    """The training image copies contract.py without the function's dependencies
    (infra/Dockerfile.train), and export/ imports it."""
    import ast
    import sys

    for path in (Path(contract.__file__), Path(contract.__file__).with_name("__init__.py")):
        tree = ast.parse(path.read_text())
        imported = {
            (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names
        }
        assert imported <= set(sys.stdlib_module_names) | {"__future__"}, (path, imported)
