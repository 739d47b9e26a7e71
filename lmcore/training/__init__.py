"""Training one run: its config, the presets, the truncated-BPTT trainer, checkpoints, devices and several processes."""
