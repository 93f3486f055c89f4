# One command per task. STACK picks the stack for render/preview/up/destroy: make preview STACK=prod
STACK ?= dev
OUT ?= build
PYTHON := .venv/bin/python
POLICY_PACK ?= policy

.PHONY: help install test lint typecheck check render preview up destroy

help:
	@echo "make install | test | lint | typecheck | check | render | preview | up | destroy   (STACK=$(STACK))"

# The virtualenv with the program's and the tests' dependencies, reinstalled when the pins change.
.venv/.dev-requirements.sha256: requirements.txt requirements-docker.txt requirements-dev.txt constraints.txt examples/opendeck-app/requirements.txt
	test -x $(PYTHON) || python3 -m venv .venv
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	cat $^ | sha256sum > $@

install: .venv/.dev-requirements.sha256

test:
	scripts/test.sh -q

lint: install
	.venv/bin/ruff check .

typecheck: install
	.venv/bin/mypy

check: lint typecheck test

# Every config the stack deploys, into $(OUT)/$(STACK)/, without cloud access or the Pulumi CLI.
render: install
	$(PYTHON) -m components.render --stack $(STACK) --out $(OUT)

preview:
	scripts/stack.sh preview $(STACK) --policy-pack $(POLICY_PACK)

up:
	scripts/stack.sh up $(STACK) --policy-pack $(POLICY_PACK)

destroy:
	scripts/stack.sh destroy $(STACK)
