"""`param f : network(INPUT -> LAYER -> ...)`: networks written in the language.

Shapes are checked against the conv/pool formula computed here, every bad chain is a
located error, the summary text parses back to the same layers, and `mlp` and network
externs are unchanged.
"""
from __future__ import annotations

import math
import re

import pytest

from ebmlang.errors import EbmError
from ebmlang.graph import ir
from ebmlang.graph.export import summary
from ebmlang.graph.lower import lower_program
from ebmlang.language.checker import check_source
from ebmlang.language.parser import parse_source


def lower(text: str) -> ir.FactorGraph:
    return lower_program(check_source(text, "n.ebm"))


def error_of(text: str) -> EbmError:
    with pytest.raises(EbmError) as info:
        lower(text)
    return info.value


def length_after(n: int, kernel: int, stride: int, padding: int) -> int:
    return math.floor((n + 2 * padding - kernel) / stride) + 1


def expected_shapes(input_shape, layers):
    """(in, out) shape of every layer, by the conv/pool formula; `layers` as (kind, args)."""
    shapes, shape = [], tuple(input_shape)
    for kind, args in layers:
        if kind == "conv":
            out, kernel, stride, padding = args
            after = (out,) + tuple(length_after(n, kernel, stride, padding) for n in shape[1:])
        elif kind == "pool":
            kernel, stride = args
            after = shape[:1] + tuple(length_after(n, kernel, stride, 0) for n in shape[1:])
        elif kind == "dense":
            after = (args[0],)
        elif kind == "flatten":
            after = (math.prod(shape),)
        else:
            after = shape
        shapes.append((shape, after))
        shape = after
    return shapes


# Each chain: the input's declaration, the network text, its input shape, and its layers
# as (kind, args) for expected_shapes.
CHAINS = [
    ("observed x[1, 8, 8] : real", "network([1, 8, 8] -> conv(16, 3, padding=1) -> swish "
     "-> conv(32, 3, stride=2, padding=1) -> swish -> avgpool(2) -> dense(1))", (1, 8, 8),
     [("conv", (16, 3, 1, 1)), ("act", ()), ("conv", (32, 3, 2, 1)), ("act", ()), ("pool", (2, 2)),
      ("dense", (1,))]),
    ("observed x[1, 8, 8] : real", "network([1, 8, 8] -> conv(8, 3) -> relu -> maxpool(2) -> flatten "
     "-> dense(10), spectral_norm)", (1, 8, 8),
     [("conv", (8, 3, 1, 0)), ("act", ()), ("pool", (2, 2)), ("flatten", ()), ("dense", (10,))]),
    ("observed x[2, 11] : real", "network([2, 11] -> conv(4, 3, stride=2) -> tanh -> maxpool(3, stride=1) "
     "-> conv(3, 1) -> dense(5) -> gelu -> dense(1))", (2, 11),
     [("conv", (4, 3, 2, 0)), ("act", ()), ("pool", (3, 1)), ("conv", (3, 1, 1, 0)), ("dense", (5,)),
      ("act", ()), ("dense", (1,))]),
    ("const S = 7\nobserved x[3, S, S] : real", "network([3, S, S] -> conv(2 * S, 4, stride=3, padding=2) "
     "-> avgpool(2, stride=1) -> silu -> flatten -> dense(S))", (3, 7, 7),
     [("conv", (14, 4, 3, 2)), ("pool", (2, 1)), ("act", ()), ("flatten", ()), ("dense", (7,))]),
    ("observed x[6] : real", "network(6 -> dense(4) -> elu -> dense(2))", (6,),
     [("dense", (4,)), ("act", ()), ("dense", (2,))]),
    ("observed x[6] : real", "network([6] -> dense(3))", (6,), [("dense", (3,))]),
]


def program(declaration: str, network: str) -> str:
    return f"{declaration}\nparam f : {network}\nlatent z : real\nenergy e = f(x)[0] + z ^ 2\n"


@pytest.mark.parametrize("declaration, network, input_shape, layers", CHAINS, ids=lambda c: str(c)[:40])
def test_every_layer_has_the_shapes_of_the_formula(declaration, network, input_shape, layers):
    graph = lower(program(declaration, network))
    init = graph.params["f"].init
    assert graph.params["f"].shape == () and graph.params["f"].is_neural
    assert init.kind == "layers" and init.input_shape == input_shape
    assert [(layer.in_shape, layer.out_shape) for layer in init.layers] == expected_shapes(input_shape, layers)
    assert init.layer_sizes == (math.prod(input_shape), math.prod(init.layers[-1].out_shape))
    assert init.spectral_norm == ("spectral_norm" in network)


def test_layers_carry_their_arguments_and_point_at_their_text():
    declaration, network = CHAINS[0][:2]
    text = program(declaration, network)
    layers = lower(text).params["f"].init.layers
    line = text.splitlines()[1]
    written = ["conv(16, 3, padding=1)", "swish", "conv(32, 3, stride=2, padding=1)", "swish", "avgpool(2)",
               "dense(1)"]
    column = 0
    for layer, source in zip(layers, written):
        column = line.index(source, column)
        assert (layer.span.line, layer.span.column, layer.span.end_column) == (2, column + 1, column + 1 + len(source))
        column += len(source)
    conv = layers[2]
    assert (conv.kind, conv.size, conv.kernel, conv.stride, conv.padding) == ("conv", 32, 3, 2, 1)
    assert conv.weight_shape() == (32, 16, 3, 3)
    assert (layers[1].kind, layers[1].activation) == ("activation", "swish")
    assert (layers[4].kind, layers[4].kernel, layers[4].stride) == ("avgpool", 2, 2)


@pytest.mark.parametrize("declaration, network, input_shape, layers", CHAINS, ids=lambda c: str(c)[:40])
def test_the_summary_text_parses_back_to_the_same_layers(declaration, network, input_shape, layers):
    graph = lower(program(declaration, network))
    shown = re.search(r"network\(.*\)", summary(graph).split("params:")[1]).group(0)
    again = lower(program(declaration, shown)).params["f"].init
    original = graph.params["f"].init
    assert "stride=1" not in shown.replace("maxpool(3, stride=1)", "").replace("avgpool(2, stride=1)", "")
    assert "padding=0" not in shown
    strip = [(la.kind, la.in_shape, la.out_shape, la.size, la.kernel, la.stride, la.padding, la.activation)
             for la in original.layers]
    assert strip == [(la.kind, la.in_shape, la.out_shape, la.size, la.kernel, la.stride, la.padding, la.activation)
                     for la in again.layers]
    assert again.spectral_norm == original.spectral_norm


def test_the_budget_counts_the_weights():
    text = program("observed x[1, 8, 8] : real", "network([1, 8, 8] -> conv(512, 3) -> dense(4096))")
    with pytest.raises(EbmError) as info:
        lower_program(check_source(text, "n.ebm"), budget=1_000_000)
    assert "the network 'f', with" in info.value.message and info.value.span.line == 2


def test_a_call_is_checked_against_the_input_shape():
    err = error_of("observed x[10] : real\nparam f : network([1, 8, 8] -> conv(4, 3) -> dense(1))\n"
                   "energy e = f(x)")
    assert err.message == "network 'f' takes 64 inputs (shape [1, 8, 8]) but is given 10"
    assert (err.span.line, err.span.column) == (3, 12)


NET = "observed x[1, 8, 8] : real\nparam f : network("
USE = ")\nenergy e = f(x)"


@pytest.mark.parametrize("text, line, column, message, hint", [
    ("latent x : real\nparam f : mlp(2 -> 1)\nenergy e = f(x, y=1)", 3, 17,
     "keyword arguments are only for network layers", "keywords such as stride="),
    ("const c = exp(1, base=2)", 1, 18, "keyword arguments are only for network layers", None),
    (NET + "[1, 8, 8] -> conv(16, padding=1, 3) -> dense(1)" + USE, 2, 52,
     "a positional argument after a keyword argument", None),
    ("observed x[1, 8, 8] : real\nparam f[3] : network([1, 8, 8] -> dense(1))\nenergy e = f(x)", 2, 1,
     "network 'f' takes no shape; its input shape is in network(...)", None),
    (NET + "[1, 8, 8] -> dense(1)) in [0, 1]\nenergy e = f(x)", 2, 46, "network 'f' cannot have bounds", None),
    (NET + "[1, 8, 8]" + USE, 2, 9, "a network needs at least one layer after its input shape", None),
    (NET + "conv(8, 3) -> dense(1)" + USE, 2, 19, "a network starts with its input shape", None),
    (NET + "[1, 1, 8, 8] -> dense(1)" + USE, 2, 29, "a network input has at most 3 axes, not 4", None),
    (NET + "[1, 0, 8] -> dense(1)" + USE, 2, 23, "a dimension of the input of network 'f' is 0", None),
    (NET + "[1, 8, 8] -> dense(1), spectral" + USE, 2, 42, "unknown network option 'spectral'",
     "did you mean 'spectral_norm'?"),
    (NET + "[1, 8, 8] -> dense(1), spectral_norm, spectral_norm" + USE, 2, 57,
     "spectral_norm is given twice", None),
    (NET + "[1, 8, 8] -> convv(8, 3) -> dense(1)" + USE, 2, 32, "unknown network layer 'convv'",
     "did you mean 'conv'?"),
    (NET + "[1, 8, 8] -> rellu -> dense(1)" + USE, 2, 32, "unknown network layer 'rellu'", "did you mean 'relu'?"),
    (NET + "[1, 8, 8] -> 10" + USE, 2, 32, "a bare number is not a network layer",
     "write dense(10) for a dense layer with 10 outputs"),
    (NET + "[1, 8, 8] -> conv(8) -> dense(1)" + USE, 2, 32,
     "conv takes 2 arguments (number of output channels, kernel size), got 1", None),
    (NET + "[1, 8, 8] -> dense(1, 2)" + USE, 2, 32, "dense takes 1 argument (output size), got 2", None),
    (NET + "[1, 8, 8] -> conv(8, 3, strid=2) -> dense(1)" + USE, 2, 43, "conv has no option 'strid'",
     "did you mean 'stride'?"),
    (NET + "[1, 8, 8] -> dense(1, padding=1)" + USE, 2, 41, "dense has no option 'padding'",
     "dense takes no options"),
    (NET + "[1, 8, 8] -> maxpool(2, padding=1) -> dense(1)" + USE, 2, 43, "maxpool has no option 'padding'",
     "maxpool's options are stride"),
    (NET + "[1, 8, 8] -> conv(8, 3, stride=1, stride=2) -> dense(1)" + USE, 2, 53, "'stride' is given twice", None),
    (NET + "[1, 8, 8] -> conv(0, 3) -> dense(1)" + USE, 2, 37, "the number of output channels of conv is 0", None),
    (NET + "[1, 8, 8] -> conv(8, 3, padding=-1) -> dense(1)" + USE, 2, 51, "the padding of conv is -1", None),
    (NET + "[1, 8, 8] -> avgpool(2, stride=0) -> dense(1)" + USE, 2, 50, "the stride of avgpool is 0", None),
    (NET + "[1, 8, 8] -> conv(8, 2.5) -> dense(1)" + USE, 2, 40,
     "the kernel size of conv must be an integer known at compile time", None),
    ("param p = 3\n" + NET + "[1, 8, 8] -> conv(p, 3) -> dense(1)" + USE, 3, 37,
     "param 'p' cannot be used in the number of output channels of conv", None),
    (NET + "[1, 4, 4] -> conv(8, 5) -> dense(1)" + USE, 2, 32,
     "conv with kernel 5 on a 4x4 input (padding 0) leaves no output", "add padding="),
    ("observed x[2, 3] : real\nparam f : network([2, 3] -> maxpool(4) -> dense(1)" + USE, 2, 29,
     "maxpool with kernel 4 on a length-3 input leaves no output", None),
    ("observed x[64] : real\nparam f : network(64 -> conv(8, 3) -> dense(1)" + USE, 2, 25,
     "conv needs an input with channels, but its input here is a vector [64]", None),
    (NET + "[1, 8, 8] -> dense(16) -> avgpool(2) -> dense(1)" + USE, 2, 45,
     "avgpool needs an input with channels, but its input here is a vector [16]", None),
    (NET + "[1, 8, 8] -> relu(2) -> dense(1)" + USE, 2, 32, "'relu' takes no arguments", "write `-> relu`"),
    (NET + "[1, 8, 8] -> conv -> dense(1)" + USE, 2, 32, "conv needs its arguments", None),
    (NET + "[1, 8, 8] -> relu -> flatten" + USE, 2, 9,
     "network 'f' has no conv or dense layer, so no weights to learn", None),
    (NET + "[1, 8, 8] -> dense(1))\nenergy e = f", 3, 12, "network 'f' is a function; call it", None),
    (NET + "[1, 8, 8] -> dense(2))\nenergy e = f[0]", 3, 12, "network 'f' cannot be indexed", None),
])
def test_bad_networks_are_located(text, line, column, message, hint):
    err = error_of(text)
    assert err.message == message
    assert (err.span.line, err.span.column) == (line, column)
    if hint is not None:
        assert hint in err.hint
    assert f"n.ebm:{line}:{column}: error: {message}" in str(err.with_source(text))


def test_an_mlp_is_unchanged():
    graph = lower("observed x[3] : real\nparam f : mlp(3 -> 8 -> 1, tanh)\nenergy e = f(x)")
    init = graph.params["f"].init
    assert (init.kind, init.layer_sizes, init.activation, init.layers) == ("mlp", (3, 8, 1), "tanh", ())
    err = error_of("observed x[4] : real\nparam f : mlp(3 -> 8 -> 1)\nenergy e = f(x)")
    assert err.message == "mlp 'f' takes 3 inputs but is given 4"


def test_a_network_extern_is_unchanged():
    graph = lower("observed x[1, 8, 8] : real\nextern net : network([1, 8, 8] -> 1)\nenergy e = net(x)")
    init = graph.params["net"].init
    assert (init.kind, init.layer_sizes, init.input_shape, init.layers) == ("network", (64, 1), (1, 8, 8), ())
    with pytest.raises(EbmError) as info:
        parse_source("extern net : network([1, 8, 8] -> conv(8, 3) -> 1)", "n.ebm")
    assert info.value.message == "a network takes an input shape and an output size"
    assert info.value.hint == "hidden layers belong to the module supplied from Python"
