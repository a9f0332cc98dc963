"""One module per workload; `run_all.py` finds them by listing this folder.

A workload module provides

    TITLE: str                      -- the section heading
    ORDER: int                      -- position in the report
    HEADLINE: harness.Headline      -- the figure the ratio column compares, and the baseline
    describe(smoke) -> str          -- problem, sizes, step counts (markdown)
    run(smoke) -> list[Row]         -- every (case, contender) measured, nothing dropped
    ebmlang_contenders() -> list    -- ebmlang's entries (the lead fills these in)

and optionally `cross_check(rows) -> list[str]`, notes printed under the table (e.g.
whether the contenders' physics agree within their statistical error).
"""
