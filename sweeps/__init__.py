"""The CLI and the study definition: presets, the trial grid, Ray start-up, Tuner.fit, the summary."""
