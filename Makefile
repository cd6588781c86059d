# The two commands of the README. Both set the machine up first (idempotent).
.PHONY: setup run test lint

setup:
	scripts/setup.sh --test

run:
	scripts/setup.sh
	.venv/bin/kpipe run

test: setup
	.venv/bin/ruff check .
	.venv/bin/pytest -ra --durations=25

lint:
	.venv/bin/ruff check .
