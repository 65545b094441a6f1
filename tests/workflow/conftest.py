"""Workflow tests: importing the helpers puts workflow/lib, workflow/scripts and paper_figures on sys.path."""

from tests.workflow import helpers  # noqa: F401
