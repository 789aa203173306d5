# depth_any_view: the two commands of the README.
#   make demo   set everything up, then run the end-to-end demo
#   make test   set everything up, then lint and run the whole test suite
# DDS never leaves this machine: localhost discovery and a per-run domain id.

VENV ?= .venv
BIN := $(VENV)/bin
ROS_DOMAIN_ID ?= $(shell python3 -c 'import random; print(random.randint(1, 100))')
export ROS_DOMAIN_ID
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup setup-test test lint demo clean

setup:
	@bash scripts/bootstrap.sh

setup-test:
	@bash scripts/bootstrap.sh --test

lint: setup
	$(BIN)/ruff check .

test: setup-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest test

demo: setup
	$(BIN)/depth-any-view demo

clean:
	rm -rf $(VENV) build install log *.egg-info output
