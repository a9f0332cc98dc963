"""Plots of models and their samples (matplotlib, optional).

Every function returns a `matplotlib.figure.Figure` and, given `path`, also saves it
(PNG unless the suffix says otherwise). Figures are built with the object API
(`Figure()`, never `pyplot`), so nothing depends on -- or changes -- a global GUI
backend: saving renders with Agg on a headless machine, and in Jupyter the returned
figure displays itself.

    from ebmlang.api.plot import plot_trace, plot_scatter_contours
    plot_trace(samples, path="trace.png")
    plot_scatter_contours(model, samples, "x", extent=(-6, 6, -6, 6), path="ring.png")
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ebmlang.errors import EbmError

# Contours are drawn up to this quantile of the energy over the grid: a ring's energy
# grows quadratically far from the modes and would squash every interesting level.
CONTOUR_CLIP_QUANTILE = 0.9
# At most this many points are scattered; more hide the contours and slow rendering.
MAX_SCATTER_POINTS = 4000


def _figure(width: float, height: float):
    """A fresh matplotlib Figure, or an EbmError saying how to install matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise EbmError("plotting needs matplotlib, which is not installed",
                       hint="pip install 'ebmlang[plot]' (or pip install matplotlib)") from None
    return Figure(figsize=(width, height), layout="constrained")


def _finish(fig, path: str | Path | None, dpi: int = 110):
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


# --------------------------------------------------------------------------
# Traces


def plot_trace(samples, var: str | None = None, *, path: str | Path | None = None,
               title: str | None = None):
    """Energy trace of every chain; with `var`, also the per-draw mean of that variable.

    samples: a `Samples` (ebmlang.inference.results) with `energy` [chains, draws] and draws per
    variable [chains, draws, *shape]. The variable panel shows e.g. the magnetisation
    of an Ising lattice, which mixes more slowly than the energy.
    """
    energy = np.asarray(samples.energy, dtype=float)
    if energy.ndim != 2:
        raise EbmError(f"samples.energy has shape {energy.shape}, expected [chains, draws]")
    panels = 2 if var is not None else 1
    fig = _figure(7.0, 2.6 * panels)
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    burn_in = int(getattr(samples, "info", {}).get("burn_in", 0) or 0)
    thin = max(1, int(getattr(samples, "info", {}).get("thin", 1) or 1))
    steps = burn_in + thin * np.arange(energy.shape[1])
    for c in range(energy.shape[0]):
        axes[0].plot(steps, energy[c], lw=0.8, label=f"chain {c}")
    axes[0].set_ylabel("energy")
    if var is not None:
        if var not in samples.draws:
            from ebmlang.errors import did_you_mean

            raise EbmError(f"no draws of '{var}' in these samples",
                           hint=did_you_mean(var, samples.draws) or f"sampled: {', '.join(samples.draws)}")
        values = np.asarray(samples.draws[var], dtype=float)
        per_draw = values.reshape(values.shape[0], values.shape[1], -1).mean(axis=2)
        for c in range(per_draw.shape[0]):
            axes[1].plot(steps, per_draw[c], lw=0.8)
        axes[1].set_ylabel(f"mean of {var}")
    axes[-1].set_xlabel("step")
    if energy.shape[0] <= 8:
        # Above the panels, where it cannot cover a trace.
        axes[0].legend(fontsize="small", ncols=min(4, energy.shape[0]), loc="lower left",
                       bbox_to_anchor=(0.0, 1.0), frameon=False, borderaxespad=0.2)
    what = "energy" + (f" and mean of {var}" if var is not None else "")
    fig.suptitle(title or f"trace of the {what}: {energy.shape[0]} chains x {energy.shape[1]} draws "
                 f"(after {burn_in} burn-in steps)", fontsize="medium")
    return _finish(fig, path)


def plot_curves(x: Sequence[float], series: Mapping[str, Sequence[float]], *, xlabel: str,
                ylabel: str, title: str | None = None, path: str | Path | None = None,
                vlines: Mapping[str, float] | None = None, logy: bool = False,
                references: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
                errors: Mapping[str, Sequence[float]] | None = None,
                styles: Mapping[str, Mapping] | None = None, size: tuple[float, float] = (6.0, 3.6)):
    """Line plot of named series over a shared x axis (training curves, sweeps).

    vlines: labelled vertical reference lines, e.g. {"T_c": 2.269}.
    references: named exact curves on their own (dense) x, drawn as plain lines, e.g.
    {"Onsager": (t, m_exact(t))}.
    errors: error bars (half-widths, e.g. standard errors) for some of the series, by name.
    styles: extra matplotlib line options for some series, e.g. {"baseline": {"ls": "--"}}.
    size: (width, height) in inches.
    """
    fig = _figure(*size)
    ax = fig.subplots()
    x = np.asarray(x, dtype=float)
    for label, ys in series.items():
        ys = np.asarray(ys, dtype=float)
        if ys.shape != x.shape:
            raise EbmError(f"series '{label}' has {ys.shape} points but x has {x.shape}")
        style = {"marker": "o", "ms": 3, **(styles or {}).get(label, {})}
        if errors and label in errors:
            err = np.asarray(errors[label], dtype=float)
            if err.shape != x.shape:
                raise EbmError(f"errors of series '{label}' have {err.shape} points but x has {x.shape}")
            ax.errorbar(x, ys, yerr=err, capsize=3, label=label, **style)
        else:
            ax.plot(x, ys, label=label, **style)
    for label, (ref_x, ref_y) in (references or {}).items():
        ax.plot(np.asarray(ref_x, dtype=float), np.asarray(ref_y, dtype=float), lw=1.2, color="k",
                alpha=0.7, label=label)
    for label, at in (vlines or {}).items():
        ax.axvline(at, color="grey", ls="--", lw=1)
        ax.text(at, 0.97, f" {label}", transform=ax.get_xaxis_transform(), va="top", fontsize="small")
    if np.array_equal(x, np.round(x)):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, steps: no tick at 0.25
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize="medium")
    if len(series) + len(references or {}) > 1:
        ax.legend(fontsize="small")
    return _finish(fig, path)


# --------------------------------------------------------------------------
# Image grids


def plot_sample_grid(arrays, *, image_shape: tuple[int, int] | None = None, ncols: int | None = None,
                     titles: Sequence[str] | None = None, cmap: str = "gray_r",
                     vmin: float | None = None, vmax: float | None = None,
                     suptitle: str | None = None, path: str | Path | None = None, scale: float = 1.6,
                     width: float | None = None, colorbar: str | Mapping[float, str] | None = None):
    """A grid of images: samples of an image-shaped variable, or named snapshots.

    arrays: [n, H, W], [n, H*W] with `image_shape=(H, W)`, or a sequence of 2-d arrays
    (e.g. noisy / clean / denoised). Spins (-1/+1), binary (0/1) and categorical labels
    all display with one colour scale per figure (vmin/vmax default to the data range).
    Each image is framed and set apart from its neighbours, so an all-white lattice
    still shows as a panel.

    scale: inches per panel; width: the figure's width in inches instead (panels shrink
    to fit), so figures with different numbers of columns can share one width.
    colorbar: a label for a continuous colour bar, or a colour key for discrete values,
    {value: name}, e.g. {-1: "spin -1", 1: "spin +1"}: one colour per value.
    """
    shaped = _images_2d(arrays, image_shape)
    n = len(shaped)
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    lo = min(float(i.min()) for i in shaped) if vmin is None else vmin
    hi = max(float(i.max()) for i in shaped) if vmax is None else vmax
    # The colour bar and its labels take about this many inches beside the panels.
    bar_room = 1.0 if colorbar is not None else 0.0
    panel = (width - bar_room) / ncols if width is not None else scale
    title_lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles else 0
    suptitle_room = 0.15 + 0.25 * (str(suptitle).count("\n") + 1) if suptitle else 0.0
    fig = _figure(width or scale * ncols + bar_room, (panel + 0.2 * title_lines) * nrows + suptitle_room)
    # Constrained layout otherwise packs framed panels edge to edge.
    fig.get_layout_engine().set(w_pad=0.05, h_pad=0.05, wspace=0.1, hspace=0.08)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    colours = {"cmap": cmap, "vmin": lo, "vmax": hi}
    if isinstance(colorbar, Mapping):
        colours = _discrete_colours(cmap, colorbar)
    shown = None
    for k, ax in enumerate(axes):
        if k >= n:
            ax.set_axis_off()
            continue
        shown = ax.imshow(shaped[k], interpolation="nearest", **colours)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_linewidth(0.6)
        if titles is not None and k < len(titles):
            ax.set_title(titles[k], fontsize="small")
    if colorbar is not None:
        # No taller than one row of panels (a full-height bar would also span the titles).
        bar = fig.colorbar(shown, ax=list(axes), shrink=0.75 if nrows == 1 else 0.6, aspect=12 * min(nrows, 2))
        if isinstance(colorbar, Mapping):
            bar.set_ticks(sorted(colorbar), labels=[colorbar[v] for v in sorted(colorbar)])
        else:
            bar.set_label(colorbar)
    if suptitle:
        fig.suptitle(suptitle, fontsize="medium")
    return _finish(fig, path)


def _images_2d(arrays, image_shape: tuple[int, int] | None) -> list[np.ndarray]:
    images = [np.asarray(a, dtype=float) for a in arrays]
    if not images:
        raise EbmError("plot_sample_grid needs at least one image")
    shaped = []
    for k, img in enumerate(images):
        if image_shape is not None:
            if img.size != image_shape[0] * image_shape[1]:
                raise EbmError(f"image {k} has {img.size} values, which is not image_shape={image_shape}")
            img = img.reshape(image_shape)
        elif img.ndim == 1:
            side = math.isqrt(img.size)
            if side * side != img.size:
                raise EbmError(f"image {k} is 1-d with {img.size} values; pass image_shape=(H, W)")
            img = img.reshape(side, side)
        if img.ndim != 2:
            raise EbmError(f"image {k} has shape {img.shape}; images must be 2-d (H, W)")
        shaped.append(img)
    return shaped


def _discrete_colours(cmap: str, key: Mapping[float, str]) -> dict:
    """One colour of `cmap` per value of `key`; each value sits in the middle of its colour's
    band, so the colour bar reads as a key with a swatch per value."""
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm

    values = np.asarray(sorted(float(v) for v in key), dtype=float)
    if len(values) < 2:
        raise EbmError("a colour key needs at least two values")
    middles = (values[1:] + values[:-1]) / 2
    edges = np.concatenate([[values[0] - (middles[0] - values[0])], middles,
                            [values[-1] + (values[-1] - middles[-1])]])
    return {"cmap": colormaps[cmap].resampled(len(values)), "norm": BoundaryNorm(edges, len(values))}


# --------------------------------------------------------------------------
# Samples over energy contours


def plot_scatter_contours(model, samples, var: str, extent: tuple[float, float, float, float], *,
                          fixed: Mapping[str, np.ndarray] | None = None, resolution: int = 120,
                          path: str | Path | None = None, title: str | None = None,
                          max_points: int = MAX_SCATTER_POINTS, seed: int = 0,
                          size: tuple[float, float] = (5.2, 4.6)):
    """2-d samples of `var` (a variable of shape [2]) scattered over the model's energy contours.

    extent: (xmin, xmax, ymin, ymax) of the grid on which the energy is evaluated -- in one
    batched call of `model.energy`. fixed: values of the model's other variables.
    samples: a `Samples` or an array [..., 2] of points. size: (width, height) in inches.
    """
    if var not in model.variables:
        from ebmlang.errors import did_you_mean

        raise EbmError(f"'{var}' is not a variable of model {model.name}",
                       hint=did_you_mean(var, model.variables))
    if tuple(model.variables[var].shape) != (2,):
        raise EbmError(f"plot_scatter_contours needs a variable of shape [2], but '{var}' has shape "
                       f"{list(model.variables[var].shape)}")
    points = np.asarray(samples.draws[var] if hasattr(samples, "draws") else samples, dtype=float)
    points = points.reshape(-1, 2)
    if len(points) > max_points:
        points = points[np.random.default_rng(seed).choice(len(points), max_points, replace=False)]
    xmin, xmax, ymin, ymax = map(float, extent)
    gx, gy = np.meshgrid(np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    state = {var: grid}
    for name, value in (fixed or {}).items():
        value = np.asarray(value, dtype=float)
        state[name] = np.broadcast_to(value, (len(grid),) + value.shape).copy()
    energy = np.asarray(model.energy(state), dtype=float).reshape(gx.shape)
    finite = energy[np.isfinite(energy)]
    if finite.size == 0:
        raise EbmError(f"the energy of {model.name} is not finite anywhere on the grid {extent}")
    top = float(np.quantile(finite, CONTOUR_CLIP_QUANTILE))
    levels = np.linspace(float(finite.min()), top, 14)
    fig = _figure(*size)
    ax = fig.subplots()
    filled = ax.contourf(gx, gy, np.minimum(energy, top), levels=levels, cmap="viridis_r")
    ax.contour(gx, gy, energy, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    fig.colorbar(filled, ax=ax, label="energy")
    ax.scatter(points[:, 0], points[:, 1], s=3, c="tab:red", alpha=0.5, lw=0, label=f"{len(points)} samples")
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.set_xlabel(f"{var}[0]")
    ax.set_ylabel(f"{var}[1]")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(title or f"{model.name}: samples of {var} over energy contours", fontsize="medium")
    return _finish(fig, path)


# --------------------------------------------------------------------------
# Factor graphs


def plot_factor_graph(graph, *, ground: bool = False, path: str | Path | None = None,
                      title: str | None = None, max_nodes: int = 400):
    """Draw a model's factor graph with networkx: variable groups (circles) and factor
    templates (squares, labelled with their term and number of ground factors).

    graph: a `FactorGraph` or a `Model`. ground=True draws every ground variable and
    factor instead (small models only: at most `max_nodes` nodes).
    """
    import networkx as nx

    from ebmlang.graph import structure

    graph = getattr(graph, "graph", graph)
    fig = _figure(7.0, 5.0)
    ax = fig.subplots()
    ax.set_axis_off()
    if ground:
        g = structure.ground_graph(graph, max_nodes=max_nodes)
        variables = [n for n in g if n[0] == "variable"]
        factors = [n for n in g if n[0] == "factor"]
        pos = nx.spring_layout(g, seed=0, iterations=100)
        nx.draw_networkx_edges(g, pos, ax=ax, width=0.5, alpha=0.6)
        nx.draw_networkx_nodes(g, pos, nodelist=variables, ax=ax, node_size=40, node_color=[
            "lightgrey" if g.nodes[n]["observed"] else "tab:blue" for n in variables])
        nx.draw_networkx_nodes(g, pos, nodelist=factors, ax=ax, node_size=18, node_shape="s",
                               node_color="k")
        ax.set_title(title or f"{graph.name}: {len(variables)} ground variables, {len(factors)} ground factors")
        return _finish(fig, path)
    g = structure.structure_graph(graph)
    variables = [n for n, d in g.nodes(data=True) if d["kind"] == "variable"]
    factors = [n for n, d in g.nodes(data=True) if d["kind"] == "factor"]
    pos = nx.bipartite_layout(g, variables, align="vertical") if factors else nx.circular_layout(g)
    nx.draw_networkx_edges(g, pos, ax=ax, width=1.2, edge_color="grey")
    nx.draw_networkx_nodes(g, pos, nodelist=variables, ax=ax, node_size=2800, node_color=[
        "lightgrey" if g.nodes[n]["observed"] else "lightsteelblue" for n in variables], edgecolors="k")
    nx.draw_networkx_nodes(g, pos, nodelist=factors, ax=ax, node_size=2400, node_shape="s",
                           node_color=["mistyrose" if g.nodes[n]["is_constraint"] else "wheat"
                                       for n in factors], edgecolors="k")
    labels = {}
    for n in variables:
        d = g.nodes[n]
        shape = "[" + ", ".join(map(str, d["shape"])) + "]" if d["shape"] else ""
        labels[n] = f"{n[1]}{shape}\n{d['domain']}" + ("\nobserved" if d["observed"] else "")
    for n in factors:
        d = g.nodes[n]
        labels[n] = f"{n[1]}\n{d['num_ground']} factors"
    nx.draw_networkx_labels(g, pos, labels=labels, ax=ax, font_size=7)
    ax.margins(0.25, 0.15)
    ax.set_title(title or f"{graph.name}: {len(variables)} variable groups, {len(factors)} factor templates")
    return _finish(fig, path)
