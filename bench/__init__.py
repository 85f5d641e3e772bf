"""Load tests and in-process floors: this service vs the tutorial baseline and MLServer, in one run."""
