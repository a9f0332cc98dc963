"""Workload: constraint problems (argmin of hard constraints) -- n-queens and 9x9 sudoku.

Every contender returns an assignment, which is verified here against the constraints
written out in plain Python; the figure is the time to a verified solution. ebmlang
solves examples/queens.ebm and examples/sudoku.ebm (pairwise `!=` constraints) with the method it
picks itself (the exact integer program); the baselines are a plain backtracking search
(queens row by row, sudoku cell by cell, most constrained cell first) and OR-Tools CP-SAT
(AllDifferent constraints), a dedicated constraint solver.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.harness import Contender, Headline, NotApplicable, Row, measure

TITLE = "Constraint problems (argmin): n-queens and sudoku"
ORDER = 3.5
HEADLINE = Headline(metric="run s", higher_is_better=False, baseline="backtracking (hand-written)")

QUEEN_SIZES = (8, 16, 24, 30)
SMOKE_QUEEN_SIZES = (8,)
# Arto Inkala's "world's hardest sudoku" (2012) and a 17-clue puzzle.
SUDOKUS = {
    "sudoku Inkala": "800000000003600000070090200050007000000045700000100030001000068008500010090000400",
    "sudoku 17 clues": "000000010400000000020000000000050407008000300001090000300400200050100000000806000",
}
BACKTRACK_SECONDS = 60.0


@dataclass(frozen=True)
class Problem:
    kind: str           # "queens" or "sudoku"
    size: int           # queens: n; sudoku: 9
    givens: np.ndarray  # sudoku clues [9, 9] (0 = blank); empty for queens


def describe(smoke: bool) -> str:
    sizes = SMOKE_QUEEN_SIZES if smoke else QUEEN_SIZES
    return (f"n-queens for n in {{{', '.join(map(str, sizes))}}} (examples/queens.ebm: one queen per row, "
            "`q[i] : integer in 0..N`, pairwise column and diagonal `!=` constraints) and two 9x9 sudokus "
            "(`x[r, c] : integer in 1..10`, clue, row, column and box constraints): examples/sudoku.ebm with n = 3. "
            "Time to a solution that is then checked against every constraint; backtracking gives up "
            f"after {BACKTRACK_SECONDS:g} s.")


# --------------------------------------------------------------------------
# Verification, written out independently of every solver


def is_queens_solution(q: np.ndarray, n: int) -> bool:
    q = [int(v) for v in np.asarray(q).reshape(-1)]
    return len(q) == n and all(0 <= v < n for v in q) and all(
        q[i] != q[j] and abs(q[i] - q[j]) != j - i for i in range(n) for j in range(i + 1, n))


def is_sudoku_solution(x: np.ndarray, givens: np.ndarray) -> bool:
    x = np.asarray(x).reshape(9, 9)
    digits = set(range(1, 10))
    boxes = [x[r:r + 3, c:c + 3].ravel() for r in (0, 3, 6) for c in (0, 3, 6)]
    return (all(set(row) == digits for row in x) and all(set(col) == digits for col in x.T)
            and all(set(box) == digits for box in boxes) and bool((x[givens > 0] == givens[givens > 0]).all()))


# --------------------------------------------------------------------------
# Backtracking baselines


class GaveUp(Exception):
    pass


def backtrack_queens(n: int, deadline: float) -> list[int]:
    columns, diagonals, anti = set(), set(), set()
    placed: list[int] = []

    def place(row: int) -> bool:
        if row == n:
            return True
        if time.perf_counter() > deadline:
            raise GaveUp
        for col in range(n):
            if col in columns or row - col in diagonals or row + col in anti:
                continue
            columns.add(col), diagonals.add(row - col), anti.add(row + col)
            placed.append(col)
            if place(row + 1):
                return True
            placed.pop()
            columns.discard(col), diagonals.discard(row - col), anti.discard(row + col)
        return False

    return placed if place(0) else []


def backtrack_sudoku(givens: np.ndarray, deadline: float) -> np.ndarray:
    grid = givens.copy()

    def candidates(r: int, c: int) -> set[int]:
        box = grid[3 * (r // 3):3 * (r // 3) + 3, 3 * (c // 3):3 * (c // 3) + 3]
        return set(range(1, 10)) - set(grid[r]) - set(grid[:, c]) - set(box.ravel())

    def solve() -> bool:
        if time.perf_counter() > deadline:
            raise GaveUp
        blanks = [(r, c) for r in range(9) for c in range(9) if grid[r, c] == 0]
        if not blanks:
            return True
        options = {cell: candidates(*cell) for cell in blanks}
        cell = min(blanks, key=lambda b: len(options[b]))
        for digit in sorted(options[cell]):
            grid[cell] = digit
            if solve():
                return True
        grid[cell] = 0
        return False

    return grid if solve() else np.zeros_like(grid)


def prepare_backtracking(problem: Problem) -> Callable[[int], Any]:
    def run(_steps):
        deadline = time.perf_counter() + BACKTRACK_SECONDS
        try:
            if problem.kind == "queens":
                return np.array(backtrack_queens(problem.size, deadline))
            return backtrack_sudoku(problem.givens, deadline)
        except GaveUp:
            raise NotApplicable(f"no solution within {BACKTRACK_SECONDS:g} s") from None

    return run


# --------------------------------------------------------------------------
# OR-Tools CP-SAT


def prepare_cp_sat(problem: Problem) -> Callable[[int], Any]:
    from ortools.sat.python import cp_model

    def run(_steps):
        model = cp_model.CpModel()
        if problem.kind == "queens":
            n = problem.size
            q = [model.NewIntVar(0, n - 1, f"q{i}") for i in range(n)]
            model.AddAllDifferent(q)
            model.AddAllDifferent([q[i] + i for i in range(n)])
            model.AddAllDifferent([q[i] - i for i in range(n)])
            cells = q
        else:
            cells = [[model.NewIntVar(1, 9, f"x{r}{c}") for c in range(9)] for r in range(9)]
            for r in range(9):
                model.AddAllDifferent(cells[r])
                model.AddAllDifferent([cells[k][r] for k in range(9)])
                rows, cols = 3 * (r // 3), 3 * (r % 3)
                model.AddAllDifferent([cells[rows + a][cols + b] for a in range(3) for b in range(3)])
                for c in range(9):
                    if problem.givens[r, c]:
                        model.Add(cells[r][c] == int(problem.givens[r, c]))
            cells = [v for row in cells for v in row]
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        status = solver.Solve(model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            raise RuntimeError("CP-SAT found no solution")
        return np.array([solver.Value(v) for v in cells])

    return run


# --------------------------------------------------------------------------
# ebmlang


def prepare_ebmlang(problem: Problem) -> Callable[[int], Any]:
    from ebmlang.cli.showcase import load_example

    model = (load_example("queens.ebm", "numpy", N=problem.size) if problem.kind == "queens"
             else load_example("sudoku.ebm", "numpy", n=3, givens=problem.givens.tolist()))
    name = "q" if problem.kind == "queens" else "x"
    return lambda _steps: model.argmin()[name]


def contenders() -> list[Contender[Problem]]:
    return [
        Contender("backtracking (hand-written)", prepare_backtracking),
        Contender("OR-Tools CP-SAT", prepare_cp_sat, requires=("ortools",), note="one worker, AllDifferent"),
        Contender("ebmlang argmin", prepare_ebmlang, requires=("ebmlang", "scipy"),
                  note="its own method choice (the integer program), numpy backend"),
    ]


def summarise(problem: Problem) -> Callable[[Any, float], Mapping[str, float]]:
    def figures(output: Any, _seconds: float) -> dict[str, float]:
        ok = (is_queens_solution(output, problem.size) if problem.kind == "queens"
              else is_sudoku_solution(output, problem.givens))
        if not ok:
            raise ValueError("the returned assignment breaks a constraint")
        return {"verified": 1.0}

    return figures


def problems(smoke: bool) -> list[tuple[str, Problem]]:
    sizes = SMOKE_QUEEN_SIZES if smoke else QUEEN_SIZES
    cases = [(f"{n}-queens", Problem("queens", n, np.zeros(0))) for n in sizes]
    for name, digits in (list(SUDOKUS.items())[:1] if smoke else SUDOKUS.items()):
        cases.append((name, Problem("sudoku", 9, np.array([int(c) for c in digits]).reshape(9, 9))))
    return cases


def run(smoke: bool) -> list[Row]:
    rows = []
    for case, problem in problems(smoke):
        for contender in contenders():
            rows.append(measure("constraints", case, contender, problem, steps=1, warmup_steps=0,
                                summarise=summarise(problem)))
    return rows
