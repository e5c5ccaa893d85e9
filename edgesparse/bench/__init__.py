"""Cross-target benchmarking: device profiles (targets), provisioning of emulated targets,
the harness that runs the on-target probe (the only code that starts processes), and the
pure report renderer."""
