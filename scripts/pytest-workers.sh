#!/usr/bin/env bash
# The pytest-xdist options of scripts/test.sh and scripts/test-lowest.sh (sourced by both):
#   -n auto           one worker process per core (CI's 2 cores: 2 workers);
#                     EDGESPARSE_TEST_WORKERS=N sets the number, 0 runs in this process (serial);
#   --dist worksteal  each worker starts on its own contiguous half of the tests (in file order,
#                     so a file's module- and session-scoped fixtures, such as fitted models,
#                     compiled C drivers and a local sshd, are mostly built on one worker only),
#                     and a worker that runs out takes half of the other's remaining tests: one
#                     slow file (tests/test_c_runtime.py) does not hold the run up.
# Arguments given to the scripts come after these, so `-n 0` there wins.
pytest_workers=(-n "${EDGESPARSE_TEST_WORKERS:-auto}" --dist worksteal)
