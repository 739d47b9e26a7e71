"""Looking inside a loaded model: traces, sensitivities, probes. Pure functions over a model and token ids."""
