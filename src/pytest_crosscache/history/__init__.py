"""The test history: each test's recent outcomes and durations, across runs."""
