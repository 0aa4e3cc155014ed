"""`wmkit quickstart`: record data, train a tokenizer and a world model, evaluate, report."""

from wmkit.apps.quickstart.plan import PRESETS, QuickstartPlan
from wmkit.apps.quickstart.runner import QuickstartResult, run_quickstart

__all__ = ["PRESETS", "QuickstartPlan", "QuickstartResult", "run_quickstart"]
