"""Cross-target benchmarking: device profiles (targets), provisioning of emulated targets, the
on-target probe, the runner (harness) composing transports (local, QEMU user mode, ssh; the only
bench code that starts processes, with provisioning) with engines (the Python probe, the C
driver), the results schema (results) and the pure report renderer (report, markup, plots)."""
