# The two commands of the README's Quick start, and a few helpers.
SHELL := /bin/bash
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint lock check-wheel services services-install services-stop bench bench-quick train-bundled

run:            ## set up, then run the main job on embedded defaults
	@scripts/bootstrap
	.venv/bin/docstream run

test:           ## set up, install + start PostgreSQL and Kafka, install headless Chromium, build Prism, run the whole suite
	@scripts/bootstrap
	scripts/dev-services install
	scripts/dev-services start
	scripts/install-browser
	scripts/build-prism >/dev/null
	.venv/bin/ruff check .
	.venv/bin/python -m pytest -p no:cacheprovider

lint:
	.venv/bin/ruff check .

lock:           ## re-resolve requirements.lock (hashed) from pyproject.toml; see scripts/lock
	scripts/lock

check-wheel:    ## build the wheel, install it in a clean venv outside the repo, run it there
	@scripts/bootstrap
	scripts/check-wheel

services:
	scripts/dev-services install
	scripts/dev-services start

services-install:
	scripts/dev-services install

services-stop:
	scripts/dev-services stop

bench:          ## its stream and PostgreSQL rows start the services, so install them first
	@scripts/bootstrap
	scripts/dev-services install
	.venv/bin/python -m bench --json bench-results/bench.json

bench-quick:
	@scripts/bootstrap
	scripts/dev-services install
	.venv/bin/python -m bench --quick

train-bundled:
	@scripts/bootstrap
	scripts/train-bundled-model
