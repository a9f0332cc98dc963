"""Network experts on a `Model`: `extern net : network(IN -> OUT)` in the `.ebm` file, the
module from Python with `model.register_network("net", module)`.

The module's weights become the model's params `net.<path>` (a torch module's
`named_parameters()` names; a JAX params pytree's key paths), so `fit` trains them,
`fit(train=...)` freezes them like any param, and `save` / `load` keep them in the
safetensors checkpoint with the rest. Nothing is pickled: the architecture is code the
user supplies again after loading, and the stored weights are checked against it.
"""
from __future__ import annotations

from typing import Any

from ebmlang.errors import EbmError, did_you_mean


def network_groups(graph, name: str) -> list[str]:
    """The network param groups `name` denotes: itself, or in a composite every expert's
    network declared as `name` (`A.net`, `B.net` for "net")."""
    networks = [k for k, p in graph.params.items() if p.is_network]
    if name in networks:
        return [name]
    found = [k for k in networks if k.endswith("." + name)]
    if found:
        return found
    if name in graph.externs:
        hint = (f"'{name}' is an elementwise extern: declare `extern {name} : network(IN -> OUT)`, "
                "or use register_extern")
    else:
        hint = did_you_mean(name, networks) or (f"networks: {', '.join(networks)}" if networks else
                                                f"declare it in the .ebm file: `extern {name} : network(IN -> OUT)`")
    raise EbmError(f"'{name}' is not a network of model '{graph.name}'", hint=hint)


def register_network(model, name: str, network: Any) -> None:
    """Give `model` the module for network `name` (see the module doc). Weights already in
    the model's params under `name.` that no module supplied yet (a loaded checkpoint's) are
    kept, after checking that the module has the same weight names and shapes; otherwise
    the module's current values become the params."""
    for group in network_groups(model.graph, name):
        adapter = model.compiled.register_network(group, network)
        prefix = group + "."
        existing = [k for k in model.params if k.startswith(prefix)]
        if existing and group not in model.networks:
            stored = {k: tuple(model.params[k].shape) for k in existing}
            wanted = {prefix + path: shape for path, shape in adapter.shapes.items()}
            if stored != wanted:
                missing = sorted(set(wanted) - set(stored))
                extra = sorted(set(stored) - set(wanted))
                shapes = [f"{k}: stored {list(stored[k])}, module {list(wanted[k])}"
                          for k in wanted if k in stored and stored[k] != wanted[k]]
                details = "; ".join(part for part in (
                    "missing " + ", ".join(missing) if missing else "",
                    "not in the module " + ", ".join(extra) if extra else "",
                    "shape mismatch " + "; ".join(shapes) if shapes else "") if part)
                raise EbmError(f"the stored weights of network '{group}' do not fit the module registered for it "
                               f"({details})", model.graph.params[group].span, source=model.graph.source,
                               hint="register a module of the architecture the weights were saved from")
        else:
            for k in existing:
                del model.params[k]
            model.params.update({prefix + path: model.backend.asarray(v) for path, v in adapter.values.items()})
        model.networks[group] = network


def network_weights(model, name: str) -> dict:
    """The model's current values of network `name`'s weights, by their module paths
    (for `module.load_state_dict(..., strict=False)` after training, or a flax pytree)."""
    import numpy as np

    groups = network_groups(model.graph, name)
    if len(groups) > 1:
        raise EbmError(f"'{name}' names the networks {', '.join(groups)}; ask for one of them")
    prefix = groups[0] + "."
    return {k[len(prefix):]: np.array(model.backend.to_numpy(v)) for k, v in model.params.items()
            if k.startswith(prefix)}
