"""Coverage-guided fuzzing (atheris) of the parsers strangers can reach: see security/fuzz/targets.py."""
