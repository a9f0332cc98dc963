"""Automatic choice of inference method, with the reason in words.

`plan_query(graph, "sample" | "argmin", observed, method=None)` looks at the
latent groups' domains and the factors' classification and returns a `Plan`:
one `BlockChoice` per block of latent groups. The caller may override the
method of the discrete or continuous block by name.
"""
from __future__ import annotations

from dataclasses import dataclass

from ebmlang.budget import Budget, as_budget
from ebmlang.errors import EbmError
from ebmlang.graph.ir import FactorGraph
from ebmlang.graph.values import check_observable
from ebmlang.inference.cluster import CLUSTER_METHODS

# Exact enumeration is used for argmin / conditionals when the latent discrete
# state space has at most this many joint states (2^20: a few MB per chunk).
ENUMERATION_LIMIT = 2 ** 20

# annealed_gibbs is an argmin method (it does not sample at T)
SAMPLE_DISCRETE = ("gibbs", "exact", "swendsen_wang", "wolff")
SAMPLE_CONTINUOUS = ("mala", "ula", "hmc", "nuts", "rwmh")
ARGMIN_DISCRETE = ("enumeration", "graphcut", "ilp", "alpha_expansion", "bp", "icm", "annealed_gibbs", "annealing")
ARGMIN_CONTINUOUS = ("lbfgs", "adam")


@dataclass(frozen=True)
class BlockChoice:
    groups: tuple[str, ...]
    kind: str  # "discrete" | "continuous"
    method: str
    reason: str


@dataclass(frozen=True)
class Plan:
    query: str
    blocks: tuple[BlockChoice, ...]
    observed: tuple[str, ...]
    schedule: str = ""
    evaluation: tuple[str, ...] = ()
    tempering: str = ""  # replica exchange, when a sample run asks for it (inference/tempering.py)

    def method_of(self, kind: str) -> str | None:
        for b in self.blocks:
            if b.kind == kind:
                return b.method
        return None

    def block(self, kind: str) -> BlockChoice | None:
        for b in self.blocks:
            if b.kind == kind:
                return b
        return None

    def __str__(self) -> str:
        return self.describe()

    def describe(self, terms: bool = True) -> str:
        """The plan in words; `terms=False` leaves out how each energy term is evaluated
        (sample summaries print the methods only)."""
        lines = [f"plan for {self.query}:"]
        if self.observed:
            lines.append(f"  observed (clamped): {', '.join(self.observed)}")
        for b in self.blocks:
            lines.append(f"  {', '.join(b.groups)}: {b.method} -- {b.reason}")
        if self.schedule:
            lines.append(f"  schedule: {self.schedule}")
        if self.tempering:
            lines.append(f"  tempering: {self.tempering}")
        if terms and self.evaluation:
            lines.append("energy terms:")
            lines.extend(f"  {line}" for line in self.evaluation)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{', '.join(b.groups)}</td><td><b>{b.method}</b></td><td>{b.reason}</td></tr>"
            for b in self.blocks
        )
        return (f"<p>plan for <b>{self.query}</b></p><table><tr><th>variables</th><th>method</th>"
                f"<th>why</th></tr>{rows}</table>")


def split_latent(graph: FactorGraph, observed) -> tuple[list[str], list[str]]:
    discrete, continuous = [], []
    for name, var in graph.variables.items():
        if var.observed or name in observed:
            continue
        (discrete if var.domain.is_discrete else continuous).append(name)
    return discrete, continuous


def plan_query(graph: FactorGraph, query: str, observed=(), method: str | dict | None = None,
               temperature: float = 1.0, budget=None, params: dict | None = None) -> Plan:
    """`params`: the model's parameter values as numpy arrays (None: their declared initial
    values); whether cluster moves fit a sampling plan depends on them."""
    from ebmlang.graph import structure

    if query not in ("sample", "argmin", "marginals"):
        raise EbmError(f"unknown query '{query}'", expected="'sample', 'argmin' or 'marginals'")
    for name in observed:
        check_observable(graph, name)
    observed = tuple(sorted(set(observed) | {n for n, v in graph.variables.items() if v.observed}))
    discrete, continuous = split_latent(graph, observed)
    if query == "marginals":
        return Plan(query, (_marginals_choice(graph, discrete, continuous, observed, as_budget(budget)),), observed, "",
                    evaluation_paths(graph))
    overrides = _overrides(method, bool(discrete), bool(continuous), query)
    blocks = []
    if not discrete and not continuous:
        raise EbmError("the model has no latent variables left to infer",
                       hint="every variable is observed; use energy() to score data")
    if discrete:
        blocks.append(_discrete_choice(graph, query, discrete, observed, overrides.get("discrete"),
                                       structure, continuous, params))
    if continuous:
        blocks.append(_continuous_choice(graph, query, continuous, overrides.get("continuous"),
                                         structure))
    schedule = ""
    if discrete and continuous:
        schedule = ("alternate: one sweep of the discrete blocks, then one step of the continuous "
                    "block, each conditioned on the other's current values"
                    if query == "sample" else
                    "alternate: exact/approximate discrete minimisation given the continuous values, "
                    "then gradient minimisation of the continuous values, until no change")
    return Plan(query, tuple(blocks), observed, schedule, evaluation_paths(graph))


def evaluation_paths(graph: FactorGraph) -> tuple[str, ...]:
    """How each template's energy is computed: a tensor contraction, or the evaluator's one
    product per ground factor."""
    from ebmlang.backends.evaluator import plan_contractions

    lines = []
    for template, contraction in zip(graph.templates, plan_contractions(graph)):
        what = f"{template.name}: {template.num_ground} ground factor{'s' if template.num_ground != 1 else ''}"
        if contraction is not None and contraction.reduces:
            lines.append(f"{what} -> one contraction, einsum '{contraction.describe()}'")
        elif template.num_ground > 1:
            lines.append(f"{what} -> one batched pass over them (nothing to contract)")
        else:
            lines.append(f"{what} -> evaluated as written")
    return tuple(lines)


def _overrides(method, has_discrete, has_continuous, query) -> dict:
    if method is None:
        return {}
    if isinstance(method, dict):
        return dict(method)
    allowed_d = SAMPLE_DISCRETE if query == "sample" else ARGMIN_DISCRETE
    allowed_c = SAMPLE_CONTINUOUS if query == "sample" else ARGMIN_CONTINUOUS
    if method in allowed_d and has_discrete:
        return {"discrete": method}
    if method in allowed_c and has_continuous:
        return {"continuous": method}
    valid = (allowed_d if has_discrete else ()) + (allowed_c if has_continuous else ())
    known = SAMPLE_DISCRETE + SAMPLE_CONTINUOUS + ARGMIN_DISCRETE + ARGMIN_CONTINUOUS
    if not isinstance(method, str) or method not in known:
        from ebmlang.errors import did_you_mean

        raise EbmError(f"unknown method {method!r}", expected="one of " + ", ".join(valid),
                       hint=did_you_mean(str(method).lower(), valid) if isinstance(method, str) else None)
    raise EbmError(f"method '{method}' does not apply to {query} on this model",
                   expected="one of " + ", ".join(valid))


def _discrete_choice(graph, query, groups, observed, override, structure, continuous=(), params=None) -> BlockChoice:
    if query == "sample" and (override == "exact" or (override is None and continuous)):
        fits, tree = _exact_block(graph, groups, tuple(observed) + tuple(continuous))
        if override == "exact" and not fits:
            raise EbmError(f"method 'exact' cannot draw {', '.join(groups)} in one block: {tree}",
                           hint="method='gibbs' samples them site by site")
        if fits:
            given = " given the continuous values" if continuous else ""
            return BlockChoice(tuple(groups), "discrete", "exact",
                               f"{'requested by the caller: ' if override else ''}the discrete variables{given} "
                               f"form {tree} -> one exact joint draw per step (forward filtering, backward "
                               "sampling on the tree)")
    from ebmlang.inference.cluster import plan_cluster_check

    colours = structure.colouring(graph)
    n_colours = len(colours.classes)
    if query == "sample" and (override is None or override in CLUSTER_METHODS):
        cluster = _cluster_choice(graph, groups, observed, override, continuous, params, n_colours)
        if cluster is not None:
            return cluster
    if query == "sample":
        method = override or "gibbs"
        reason = (f"all latent variables in {', '.join(groups)} are discrete; the interaction graph has "
                  f"{n_colours} colour{'s' if n_colours != 1 else ''} -> chromatic block Gibbs "
                  f"({n_colours} batched block update{'s' if n_colours != 1 else ''} per sweep)")
        scanned = _scanned(graph, groups, colours)
        if scanned:
            rest = sum(1 for members in colours.classes if any(len(ix) for g, ix in members.items()
                                                                if g not in scanned))
            reason = (f"all latent variables in {', '.join(groups)} are discrete; {', '.join(scanned)} "
                      f"dense (the colouring gives one unit per colour) with a quadratic energy -> "
                      "Gibbs by sequential scan, one row of the couplings times the state per unit")
            if rest:
                reason += f", then chromatic block Gibbs for the rest ({rest} block update{'s' if rest != 1 else ''})"
        if override:
            reason = f"requested by the caller ({reason})"
        elif continuous and plan_cluster_check(graph, groups, tuple(observed) + tuple(continuous), (), params) is None:
            reason += ("; the couplings are ferromagnetic, but cluster moves need the discrete block alone "
                       "(the continuous values change its fields every step)")
        return BlockChoice(tuple(groups), "discrete", method, reason)
    from ebmlang.inference.discrete_map.tree_dp import rooted_forest
    from ebmlang.inference.tabulate import latent_index, latent_pairs, tabular_status

    status = tabular_status(graph, observed)
    if override:
        return BlockChoice(tuple(groups), "discrete", override, "requested by the caller")
    if status.tabular:
        pairs = latent_pairs(graph, observed)
        forest = rooted_forest(latent_index(graph, observed).total, pairs)
        if forest is not None and pairs.shape[0]:
            return BlockChoice(tuple(groups), "discrete", "bp",
                               f"the interaction graph is {forest.describe(pairs.shape[0])} -> max-product "
                               "BP, two passes from the leaves to the roots and back: exact minimum")
    if status.state_space <= ENUMERATION_LIMIT:
        return BlockChoice(tuple(groups), "discrete", "enumeration",
                           f"{status.state_space} joint discrete states <= {ENUMERATION_LIMIT} -> exact "
                           "minimum by enumeration")
    if not status.tabular:
        return BlockChoice(tuple(groups), "discrete", "annealing",
                           f"{status.why_not} -> simulated annealing with block Gibbs")
    constraints = [t.term for t in graph.templates if t.is_constraint and set(t.groups) & set(groups)]
    if constraints:
        return BlockChoice(tuple(groups), "discrete", "auto-tabular",
                           f"tabular factors with hard constraints ({', '.join(dict.fromkeys(constraints))}) "
                           "-> graph cut if binary and submodular, else the exact integer program (HiGHS): "
                           "the proven minimum or a proof that no state is feasible")
    return BlockChoice(tuple(groups), "discrete", "auto-tabular",
                       "tabular factors -> method chosen from the factor tables at run time (graph "
                       "cut, the exact integer program when small, else alpha-expansion or loopy BP)")


def _cluster_choice(graph, groups, observed, override, continuous, params, n_colours) -> BlockChoice | None:
    """Swendsen-Wang when the couplings are ferromagnetic Potts / Ising ones (inference/cluster.py);
    a requested cluster method on a model that does not take it is an EbmError; else None."""
    from ebmlang.inference.cluster import cluster_error, plan_cluster_check

    sweep = f"then a chromatic Gibbs sweep ({n_colours} block update{'s' if n_colours != 1 else ''})"
    if override is not None:
        found = plan_cluster_check(graph, groups, observed, continuous, params, requested=True)
        if found is not None:
            raise cluster_error(graph, override, *found)
        name = "Swendsen-Wang" if override == "swendsen_wang" else "Wolff"
        return BlockChoice(tuple(groups), "discrete", override,
                           f"requested by the caller: a {name} cluster update, {sweep}, per step")
    if plan_cluster_check(graph, groups, observed, continuous, params) is not None:
        return None
    return BlockChoice(tuple(groups), "discrete", "swendsen_wang",
                       f"all latent variables in {', '.join(groups)} are discrete and every coupling is "
                       "ferromagnetic Potts / Ising (c - J [a == b], J >= 0) -> Swendsen-Wang: bonds with "
                       f"p = 1 - exp(-J/T), every cluster relabelled by heat bath, {sweep} per step")


def _exact_block(graph, groups, given) -> tuple[bool, str]:
    """(True, "a chain (...)") when `groups` given `given` are a pairwise forest that tabulates,
    else (False, why not)."""
    from ebmlang.inference.discrete_map.tree_dp import rooted_forest
    from ebmlang.inference.tabulate import latent_index, latent_pairs, tabular_status

    status = tabular_status(graph, given)
    if not status.tabular:
        return False, status.why_not
    if status.arity > 2:
        return False, "a factor reads three or more of them"
    pairs = latent_pairs(graph, given)
    forest = rooted_forest(latent_index(graph, given).total, pairs)
    if forest is None:
        return False, "their interaction graph has a cycle"
    return True, forest.describe(pairs.shape[0])


# Plan-time tree decompositions stop here (networkx's heuristics grow faster than linearly); larger
# models are decomposed when the query runs.
PLAN_DECOMPOSE_PAIRS = 20_000


def unobserved_continuous_error(continuous, what: str) -> EbmError:
    """Exact discrete queries sum over the discrete variables only: continuous ones must be given."""
    return EbmError(f"{what} need every continuous variable observed; {', '.join(continuous)} "
                    f"{'is' if len(continuous) == 1 else 'are'} not",
                    hint=f"pass observed={{'{continuous[0]}': ...}}, or use sample(...) for the joint")


def _marginals_choice(graph, discrete, continuous, observed, budget: Budget) -> BlockChoice:
    """Exact marginals: sum-product on the forest, or on a junction tree of small width."""
    import networkx as nx

    from ebmlang.inference.exact.junction import tree_decomposition
    from ebmlang.inference.tabulate import latent_index, latent_pairs, tabular_status

    if continuous:
        raise unobserved_continuous_error(continuous, "exact marginals")
    if not discrete:
        raise EbmError("the model has no latent discrete variables to sum over")
    status = tabular_status(graph, observed)
    if not status.tabular:
        return BlockChoice(tuple(discrete), "discrete", "none", f"{status.why_not}: no exact tables")
    is_tree, tree = _exact_block(graph, discrete, observed)
    if is_tree:
        return BlockChoice(tuple(discrete), "discrete", "exact",
                           f"tree sum-product, width 1 -- the interaction graph is {tree}: log Z, marginals "
                           "and draws in two passes")
    pairs = latent_pairs(graph, observed)
    total = latent_index(graph, observed).total
    if pairs.shape[0] > PLAN_DECOMPOSE_PAIRS:
        return BlockChoice(tuple(discrete), "discrete", "exact",
                           f"exact if its junction tree fits the budget ({pairs.shape[0]:,} interacting pairs: "
                           "decomposed when the query runs)")
    interaction = nx.Graph()
    interaction.add_nodes_from(range(total))
    interaction.add_edges_from(map(tuple, pairs.tolist()))
    width, bags = tree_decomposition(interaction)
    labels = max(graph.variables[g].domain.num_values for g in discrete)
    table = float(labels) ** (width + 1)
    if 8.0 * bags.number_of_nodes() * table * table > budget.bytes:
        return BlockChoice(tuple(discrete), "discrete", "bp",
                           f"approximate: loopy sum-product BP, marginals and the Bethe log Z -- a junction tree "
                           f"has width {width} (tables of {table:.3g} joint labels), more than the budget holds")
    return BlockChoice(tuple(discrete), "discrete", "exact",
                       f"junction tree, width {width} ({bags.number_of_nodes()} bags, networkx elimination "
                       "order) -- the interaction graph has cycles or factors over 3+ variables")


def _scanned(graph: FactorGraph, groups, colours) -> list[str]:
    """The groups a Gibbs sweep scans unit by unit (inference/dense_scan.py)."""
    from ebmlang.inference.dense_scan import scan_plan

    counts = {g: sum(1 for members in colours.classes if len(members.get(g, ()))) for g in groups}
    return [g for g in groups if scan_plan(graph, g, counts[g]) is not None]


def _continuous_choice(graph, query, groups, override, structure) -> BlockChoice:
    smooth = True
    blame = ""
    for t in graph.templates:
        if not set(t.groups) & set(groups):
            continue
        info = structure.classify(t, graph)
        if not info.differentiable:
            smooth, blame = False, t.term
            break
    bounded = [g for g in groups if graph.variables[g].domain.kind == "bounded"]
    bound_note = (f"; bounded {', '.join(bounded)} sampled through a logit transform with its "
                  "Jacobian" if bounded else "")
    if query == "sample":
        if override:
            return BlockChoice(tuple(groups), "continuous", override, "requested by the caller" + bound_note)
        if smooth:
            return BlockChoice(tuple(groups), "continuous", "nuts",
                               "continuous latent variables with an energy differentiable in them -> "
                               "NUTS (no-U-turn HMC; Stan's warm-up adapts the step toward acceptance "
                               "0.8 and a diagonal mass)" + bound_note)
        return BlockChoice(tuple(groups), "continuous", "rwmh",
                           f"term '{blame}' is not differentiable in its continuous variables -> "
                           "random-walk Metropolis-Hastings with an adapted proposal scale" + bound_note)
    if override:
        return BlockChoice(tuple(groups), "continuous", override, "requested by the caller")
    if not smooth:
        raise EbmError(f"argmin needs an energy differentiable in the continuous variables, but term "
                       f"'{blame}' is not", span=graph.term_span(blame),
                       hint="sample at a low temperature instead: sample(..., temperature=0.05)")
    return BlockChoice(tuple(groups), "continuous", "lbfgs",
                       "continuous latent variables, differentiable energy -> L-BFGS from several "
                       "starts (bounded variables projected onto their bounds)")
