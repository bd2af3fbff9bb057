# The two commands of the README's Quick start, and a few helpers.
SHELL := /bin/bash
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint services services-stop bench bench-quick train-bundled

run:            ## set up, then run the main job on embedded defaults
	@scripts/bootstrap
	.venv/bin/docstream run

test:           ## set up, start PostgreSQL + Kafka + build Prism, run the whole suite
	@scripts/bootstrap
	scripts/dev-services start
	scripts/build-prism >/dev/null
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -p no:cacheprovider

lint:
	.venv/bin/ruff check .

services:
	scripts/dev-services start

services-stop:
	scripts/dev-services stop

bench:
	@scripts/bootstrap
	.venv/bin/python -m bench --json bench-results/bench.json

bench-quick:
	@scripts/bootstrap
	.venv/bin/python -m bench --quick

train-bundled:
	@scripts/bootstrap
	scripts/train-bundled-model
