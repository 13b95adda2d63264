"""Code that runs inside one trial process: determinism, data stream, model, loop, reporting.

Only `trainables.tune_entry` imports Ray; the rest runs and is tested without it.
"""
