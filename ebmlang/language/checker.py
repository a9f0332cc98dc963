"""Check a parsed program: resolve names, type expressions, evaluate consts, resolve imports.

`check_program(program)` takes the untyped `ast.Program` from the parser and returns an
`ast.CheckedProgram` whose models lowering can consume without re-validating anything:

* every expression has `ty` filled in (`ast.Type`);
* every const is evaluated into `consts` (ints, floats or numpy arrays), and the
  compile-time parts of declarations (shapes, domain arguments, param bounds,
  distribution arguments, mlp sizes, scalar param values) are folded into `Number`s;
* imports are loaded, checked and merged: an imported file's default model appears
  as `Alias`, its named models as `Alias.Name`;
* composites (`model C = A * B`) are checked for consistent shared variables.

Bad input raises `EbmError` (one problem) or `EbmErrors` (several; it is an `EbmError`
whose message and span are the first problem's). Nothing in a `.ebm` file is executed.

This module is the orchestrator: it walks a file, loads and checks its imports
(recursively, refusing cycles), runs one model checker per model and gathers their
errors and warnings. The work itself lives beside it:

* builtin_names.py -- the names the language defines (constants, functions, ...);
* consteval.py -- compile-time evaluation of constant and index expressions;
* check_scope.py -- symbols and scopes of one model;
* check_expr.py -- the typing of expressions;
* check_decls.py -- the declarations and terms of one model;
* check_bounds.py -- every index a term computes, checked over its index set;
* check_compose.py -- composite models, import aliases and `model_interface`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ebmlang.errors import EbmError
from ebmlang.language import ast
from ebmlang.language.ast import Span
from ebmlang.language.builtin_names import ACTIVATIONS, BUILTIN_CONSTANTS, BUILTIN_FUNCTIONS, DISTRIBUTIONS
from ebmlang.language.check_compose import (
    ModelInterface,
    VariableInfo,
    aliased_models,
    check_composite,
    model_interface,
    model_refs,
)
from ebmlang.language.check_decls import ModelChecker
from ebmlang.language.consteval import MAX_ENUMERATED, evaluate_constant
from ebmlang.language.loader import ImportResolver, Loader, parse_file
from ebmlang.language.parser import parse_source

__all__ = [
    "check_program",
    "check_source",
    "model_interface",
    "ModelInterface",
    "VariableInfo",
    "evaluate_constant",
    "EbmErrors",
    "BUILTIN_CONSTANTS",
    "BUILTIN_FUNCTIONS",
    "ACTIVATIONS",
    "DISTRIBUTIONS",
]

# Largest index set the checker enumerates (to evaluate consts or check index bounds).
# Read on every check, so a caller may lower it to leave bounds checks to lowering.
MAX_CHECKED_GROUND = MAX_ENUMERATED


class EbmErrors(EbmError):
    """Several independent errors, reported together; acts as the first one."""

    def __init__(self, errors: list[EbmError]):
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.message, first.span, source=first.source,
                         expected=first.expected, hint=first.hint, notes=first.notes)

    def with_source(self, source: str) -> "EbmErrors":
        for err in self.errors:
            err.with_source(source)
        self.source = self.errors[0].source
        self.args = (self.render(),)
        return self

    def render(self) -> str:
        errors = getattr(self, "errors", None)
        if not errors:
            return super().render()
        parts = [err.render() for err in errors]
        return "\n".join(parts) + f"\n{len(errors)} errors"


@dataclass
class _Session:
    """State of one `check_program` call: loaded imports, the import chain and the
    largest index set to enumerate."""

    resolver: ImportResolver
    max_ground: int
    loaded: dict[str, tuple[ast.CheckedProgram, str | None]] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)


def check_program(program: ast.Program, *, loader: Loader | None = None,
                  allow_root: str | os.PathLike | None = None) -> ast.CheckedProgram:
    """Type-check a parsed program and resolve its imports.

    loader: reads an imported file given its path (default: the file system);
      e.g. `{"prior.ebm": text}.__getitem__` for programs kept in memory. Import
      paths are relative to the importing file.
    allow_root: a directory imports may also come from (by default only the
      directory of the top file and below; the working directory for "<string>").
    Returns a CheckedProgram; raises EbmError (or EbmErrors, several) on any problem.
    """
    resolver = ImportResolver(program.file, loader=loader, allow_root=allow_root)
    session = _Session(resolver, MAX_CHECKED_GROUND)
    session.chain.append(resolver.identity(program.file))
    checked, _ = _check_file(program, session)
    return checked


def check_source(text: str, file: str = "<string>", *, loader: Loader | None = None,
                 allow_root: str | os.PathLike | None = None) -> ast.CheckedProgram:
    """Parse and check source text in one step."""
    return check_program(parse_source(text, file), loader=loader, allow_root=allow_root)


def load_program(path: str | os.PathLike, *, allow_root: str | os.PathLike | None = None
                 ) -> ast.CheckedProgram:
    """Read, parse and check a file with its imports: the front end in one call."""
    return check_program(parse_file(path), allow_root=allow_root)


_TOP_LEVEL_DECLS = (ast.ConstDecl, ast.VarDecl, ast.ParamDecl, ast.EnergyDecl, ast.ConstraintDecl,
                    ast.ExternDecl)
_RESERVED_MODEL_NAMES = ("main",)


def _check_file(program: ast.Program, session: _Session) -> tuple[ast.CheckedProgram, str | None]:
    """Check one file; also returns the key of its top-level model (None if it has none)."""
    file, source = program.file, program.source
    errors: list[EbmError] = []
    models: dict[str, ast.CheckedModel | ast.CheckedComposite] = {}
    model_spans: dict[str, Span] = {}
    warnings: list[str] = []

    def record(err: EbmError) -> None:
        if isinstance(err, EbmErrors):
            errors.extend(err.errors)
        else:
            errors.append(err.with_source(source) if err.span is None or err.span.file == file else err)

    def claim(name: str, span: Span) -> bool:
        if name in model_spans:
            record(EbmError(f"duplicate model name '{name}'", span,
                            notes=[(model_spans[name], f"'{name}' first defined here")]))
            return False
        model_spans[name] = span
        return True

    top_items = tuple(d for d in program.items if isinstance(d, _TOP_LEVEL_DECLS))
    named = [d for d in program.items if isinstance(d, (ast.ModelBlock, ast.ModelDef))]
    imports = [d for d in program.items if isinstance(d, ast.ImportDecl)]
    top_name = _top_model_name(file, {d.name for d in named} | {d.alias for d in imports})
    failed: set[str] = set()  # models whose errors are already reported

    # imports: each imported model joins this file's models under its alias
    for decl in imports:
        if decl.alias in _RESERVED_MODEL_NAMES:
            record(EbmError(f"'{decl.alias}' cannot be an import alias", decl.span))
            continue
        try:
            imported, imported_top = _load_import(decl, program, session)
        except EbmError as err:
            record(err)
            failed.add(decl.alias)
            continue
        if claim(decl.alias, decl.span):
            for key, model in aliased_models(imported, imported_top, decl.alias).items():
                models[key] = model
                model_spans.setdefault(key, decl.span)
            warnings.extend(imported.warnings)

    # the top-level model; model blocks see its consts and externs
    top = ModelChecker(top_name, file, source, max_ground=session.max_ground)
    top_model = top.run(top_items, program.span)
    errors.extend(top.errors)
    warnings.extend(top.scope.warnings)
    shared = {k: s for k, s in top.scope.symbols.items() if s.kind in ("const", "extern")}
    shared_decls = tuple(d for d in top_model.decls if isinstance(d, ast.ExternDecl))
    has_terms = any(isinstance(d, (ast.EnergyDecl, ast.ConstraintDecl)) for d in top_items)
    has_content = any(not isinstance(d, (ast.ConstDecl, ast.ExternDecl)) for d in top_items)
    top_key = None
    if (has_terms or has_content or not named) and claim(top_name, program.span):
        models[top_name] = top_model
        top_key = top_name

    last_named = None
    for position, decl in enumerate(named):
        if not claim(decl.name, decl.span):
            continue
        if isinstance(decl, ast.ModelBlock):
            checker = ModelChecker(decl.name, file, source, inherited=shared, max_ground=session.max_ground,
                                   hidden={k: s for k, s in top.scope.symbols.items() if k not in shared})
            model = checker.run(decl.items, decl.span, inherited_decls=shared_decls)
            errors.extend(checker.errors)
            warnings.extend(checker.scope.warnings)
            if checker.errors:
                failed.add(decl.name)
                continue
            models[decl.name] = model
        else:
            if model_refs(decl.expr) & failed:
                failed.add(decl.name)  # its parts already reported their errors
                continue
            try:
                below = {d.name for d in named[position:]}
                models[decl.name] = check_composite(decl, models, top.scope.consts, file, source, below,
                                                    max_ground=session.max_ground)
            except EbmError as err:
                record(err)
                failed.add(decl.name)
                continue
        last_named = decl.name

    if errors:
        # report in reading order: imported files' errors first, then this file's by position
        errors.sort(key=lambda e: (e.span is not None and e.span.file == file,
                                   (e.span.line, e.span.column) if e.span is not None else (0, 0)))
        raise errors[0] if len(errors) == 1 else EbmErrors(errors)
    if has_terms or last_named is None:
        default = top_name
        if not has_terms and top_key is not None:
            warnings.append(f"{file}:1:1: warning: model '{top_name}' has no energy terms or constraints")
    else:
        default = last_named
    return ast.CheckedProgram(file, source, models, default, tuple(warnings)), top_key


def _top_model_name(file: str, taken: set[str]) -> str:
    """The top-level model is named after its file (`ising.ebm` -> `ising`), else `main`."""
    stem = os.path.splitext(os.path.basename(file))[0]
    if stem.isidentifier() and stem not in taken and not file.startswith("<"):
        return stem
    name = "main"
    while name in taken:
        name = "_" + name
    return name


def _load_import(decl: ast.ImportDecl, program: ast.Program, session: _Session
                 ) -> tuple[ast.CheckedProgram, str | None]:
    target = session.resolver.resolve(decl.path, program.file, decl.span)
    identity = session.resolver.identity(target)
    if identity in session.chain:
        start = session.chain.index(identity)
        cycle = [os.path.basename(p) for p in session.chain[start:]] + [os.path.basename(identity)]
        raise EbmError(f"import cycle: {' -> '.join(cycle)}", decl.span,
                       hint="a file cannot import itself, directly or through other files")
    if identity in session.loaded:
        return session.loaded[identity]
    text = session.resolver.read(target, decl.span)
    imported_program = parse_source(text, target)
    session.chain.append(identity)
    try:
        result = _check_file(imported_program, session)
    finally:
        session.chain.pop()
    session.loaded[identity] = result
    return result
