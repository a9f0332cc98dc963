"""Fixtures for the backend tests live in backend_testing.py, importable by name
(a `conftest` module name is shared by every test folder, so tests never import it)."""
from backend_testing import *  # noqa: F401,F403
