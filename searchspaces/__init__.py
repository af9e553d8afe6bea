"""Layerwise search spaces on MobileNetV2/V3 and on the tabular-benchmark networks.

Importing this package does not import TensorFlow; the Keras builder lives in `searchspaces.builder`.
"""

from typing import Callable, Dict

from searchspaces.bench import channel_bench_macro_mobilenet, nas_bench_macro
from searchspaces.mobilenet import cifar_mobilenet_v2, mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small
from searchspaces.space import Architecture, BlockConfig, ConvSpec, Encoding, Option, SearchableLayer, SearchSpace

_FACTORIES: Dict[str, Callable[[], SearchSpace]] = {
    "mobilenet_v2": lambda: mobilenet_v2(1.0, "mobilenet_v2"),
    "mobilenet_v2_140": lambda: mobilenet_v2(1.4, "mobilenet_v2_140"),
    "mobilenet_v3_small": mobilenet_v3_small,
    "mobilenet_v3_large": mobilenet_v3_large,
    "cifar_mobilenet_v2": cifar_mobilenet_v2,
    "nas_bench_macro": nas_bench_macro,
    "channel_bench_macro_mobilenet": channel_bench_macro_mobilenet,
}
SPACE_NAMES = tuple(_FACTORIES)
_CACHE: Dict[str, SearchSpace] = {}


def get_space(name: str) -> SearchSpace:
    """The search space registered under `name`; ValueError lists the known names."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown search space {name!r}; allowed: {', '.join(SPACE_NAMES)}")
    if name not in _CACHE:
        _CACHE[name] = _FACTORIES[name]()
    return _CACHE[name]


__all__ = [
    "Architecture", "BlockConfig", "ConvSpec", "Encoding", "Option", "SearchableLayer", "SearchSpace",
    "SPACE_NAMES", "get_space",
]
