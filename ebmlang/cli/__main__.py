"""`python -m ebmlang.cli ...` runs the `ebm` command line."""
import sys

from ebmlang.cli.entry import main

sys.exit(main())
