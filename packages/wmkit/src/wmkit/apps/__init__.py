"""wmkit.apps: the end-to-end applications, `wmkit quickstart` and `wmkit play`.

This is the one place that composes concrete sibling packages (DESIGN.md §2).
"""
