# The project's entry points. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTHON_SOURCES := $(wildcard erp bot rocketchat_sim rcchat tests loadtests security scripts collections roles lab ops release)
PYTEST_ARGS ?=
# The drills make test-infra leaves out: the single-host upgrade under load is judged in make
# test-delivery's upgrade to release 2 (one host, two ERP replicas), so CI does not run it twice.
TEST_INFRA_DRILL_SKIP ?= upgrade
# The lab `make lab-up` starts: an inventory whose hosts become containers (docs/lab.md).
LAB_INVENTORY ?= inventory/lab
# The inventory make test-multi deploys across its lab hosts.
MULTI_INVENTORY ?= inventory/lab

help: ## list the targets
	@grep -hE '^[a-z][a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv with every pinned tool and the project installed editable

$(STAMP): requirements.txt pyproject.toml
	@# A fresh Debian lacks these: say what to install instead of failing half-way (README, Prerequisites).
	@missing=""; command -v git >/dev/null || missing="$$missing git"; \
	  python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	  if [ -n "$$missing" ]; then echo "missing:$$missing. Install them first (as root):" \
	    "apt-get install -y --no-install-recommends$$missing" >&2; exit 1; fi
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

lint: setup ## ruff, yamllint, ansible-lint (production profile), bandit
	$(BIN)/ruff check $(PYTHON_SOURCES)
	$(BIN)/ruff format --check $(PYTHON_SOURCES)
	$(BIN)/yamllint --strict .
	@if [ -d roles ] && [ -n "$$(ls -A roles)" ]; then \
	  echo "ansible-lint"; $(BIN)/ansible-lint --offline --profile production; fi
	$(BIN)/bandit --quiet --recursive --configfile pyproject.toml erp bot rocketchat_sim rcchat security loadtests collections roles lab ops release

format: setup ## rewrite Python sources with ruff
	$(BIN)/ruff check --fix $(PYTHON_SOURCES)
	$(BIN)/ruff format $(PYTHON_SOURCES)

# `make -n` still runs recipe lines that name $(MAKE): those lines stop at DRY_RUN instead.
DRY_RUN := $(findstring n,$(firstword -$(MAKEFLAGS)))

# pytest beside the deployment cycles (each waits mostly on processes and containers). In the background:
# the project's images built once on this machine's engine (playbooks/docker.yml --tags images, in
# TEST_IMAGES_LOG), then, side by side, make test-infra (this machine's stack), make test-multi (the
# production-shaped inventory/lab across its hosts: upgrade, host-fault and host-loss drills included) and make
# test-delivery (the delivery pipeline against its lab; its release builds have their own directory and
# find the layers just built), in TEST_INFRA_LOG, TEST_MULTI_LOG and TEST_DELIVERY_LOG. Should that first
# build fail, they run one after the other. In the foreground: pytest. All are summarised at the end; all
# must pass. One after the other, test-infra then test-multi took 26 + 40 min on these machines, past
# CI's 60; test-delivery after pytest ran alone for its last 15 min, on a machine otherwise idle.
# TEST_SERIAL=true runs them one after the other; TEST_DELIVERY=false or TEST_MULTI=false leaves that out.
TEST_IMAGES_LOG ?= .state/test-images.log
TEST_INFRA_LOG ?= .state/test-infra.log
TEST_DELIVERY_LOG ?= .state/test-delivery.log
TEST_MULTI_LOG ?= .state/test-multi.log
# How busy the machine was, minute by minute, while make test ran (ops/cpu_busy.py): its last line, the whole
# run, is printed at the end.
TEST_CPU_LOG ?= .state/cpu-busy.log
# make test runs make test-infra at this niceness beside the others, so the multi-host cycle (make test-multi)
# gets the CPU first. It reaches test-infra's processes on this machine (the images' push,
# the verification from here); what runs in its lab host (make deploy-cycle there) runs at normal priority.
TEST_INFRA_NICE ?= 10
TEST_DELIVERY ?= true
TEST_MULTI ?= true
test: setup ## lint (beside the images' build), then every test: pytest, beside make test-infra, make test-multi and make test-delivery
	@set -u; if [ -n "$(DRY_RUN)" ]; then echo "make -n: would run lint, pytest, make test-delivery, make test-infra, make test-multi"; exit 0; fi; \
	  cpu_of() { t=$$(mktemp); times > "$$t"; set -- "$$1" $$(tail -n 1 "$$t"); rm -f "$$t"; \
	    echo "CPU of $$1: user $$2, system $$3 (its processes on this machine; its containers' not counted)"; }; \
	  delivery() { if [ "$(TEST_DELIVERY)" = false ]; then echo "TEST_DELIVERY=false: no delivery run"; return 0; fi; \
	    ( $(MAKE) test-delivery; rc=$$?; cpu_of "make test-delivery"; exit $$rc ); }; \
	  multi() { if [ "$(TEST_MULTI)" = false ]; then echo "TEST_MULTI=false: no multi-host cycle"; return 0; fi; \
	    ( $(MAKE) test-multi; rc=$$?; cpu_of "make test-multi"; exit $$rc ); }; \
	  infra_cycle() { ( start=$$(date +%s); nice -n $(TEST_INFRA_NICE) $(MAKE) test-infra; rc=$$?; \
	    echo "test-infra: exit $$rc after $$(( $$(date +%s) - start )) s (nice $(TEST_INFRA_NICE))"; \
	    cpu_of "make test-infra"; exit $$rc ); }; \
	  if [ "$(TEST_SERIAL)" = true ]; then \
	  $(MAKE) lint && $(BIN)/pytest $(PYTEST_ARGS) && $(MAKE) test-infra && delivery && multi; exit $$?; fi; \
	  mkdir -p $(dir $(TEST_IMAGES_LOG)) $(dir $(TEST_INFRA_LOG)) $(dir $(TEST_DELIVERY_LOG)) $(dir $(TEST_MULTI_LOG)); \
	  rm -f $(TEST_INFRA_LOG).rc $(TEST_INFRA_LOG).lint $(TEST_CPU_LOG); \
	  $(PY) -m ops.cpu_busy sample --every 60 --out $(TEST_CPU_LOG) & cpu=$$!; \
	  echo "the images (beside lint), then make test-infra, make test-multi and make test-delivery side by side," \
	    "beside pytest; logs: $(TEST_IMAGES_LOG), $(TEST_INFRA_LOG), $(TEST_MULTI_LOG), $(TEST_DELIVERY_LOG)"; \
	  ( built=false; $(BIN)/ansible-playbook playbooks/docker.yml --tags images > $(TEST_IMAGES_LOG) 2>&1 && built=true; \
	    until [ -s $(TEST_INFRA_LOG).lint ]; do sleep 2; done; \
	    if [ "$$(cat $(TEST_INFRA_LOG).lint)" != 0 ]; then echo "lint failed: no deployment cycle" > $(TEST_INFRA_LOG); \
	      echo "1 1 1" > $(TEST_INFRA_LOG).rc; exit 0; fi; \
	    if $$built; then \
	      infra_cycle > $(TEST_INFRA_LOG) 2>&1 & infra=$$!; \
	      delivery > $(TEST_DELIVERY_LOG) 2>&1 & deliv=$$!; \
	      multi > $(TEST_MULTI_LOG) 2>&1; multi_rc=$$?; wait $$infra; infra_rc=$$?; wait $$deliv; delivery_rc=$$?; \
	    else echo "building the images first failed (see $(TEST_IMAGES_LOG)): test-infra, test-multi, test-delivery"; \
	      infra_cycle > $(TEST_INFRA_LOG) 2>&1; infra_rc=$$?; \
	      multi > $(TEST_MULTI_LOG) 2>&1; multi_rc=$$?; \
	      delivery > $(TEST_DELIVERY_LOG) 2>&1; delivery_rc=$$?; fi; \
	    echo "$$infra_rc $$multi_rc $$delivery_rc" > $(TEST_INFRA_LOG).rc ) & cycles=$$!; \
	  trap 'kill $$cycles $$cpu 2>/dev/null; wait $$cycles' INT TERM; \
	  ( $(MAKE) lint; rc=$$?; cpu_of "lint"; exit $$rc ); lint_rc=$$?; echo $$lint_rc > $(TEST_INFRA_LOG).lint; \
	  if [ $$lint_rc != 0 ]; then wait $$cycles; kill $$cpu 2>/dev/null; echo "lint failed (exit $$lint_rc): no test ran"; \
	    exit $$lint_rc; fi; \
	  ( $(BIN)/pytest --durations=25 $(PYTEST_ARGS); rc=$$?; cpu_of "pytest"; exit $$rc ); pytest_rc=$$?; \
	  echo "pytest done; waiting for make test-infra, make test-multi and make test-delivery"; \
	  wait $$cycles; read infra_rc multi_rc delivery_rc < $(TEST_INFRA_LOG).rc \
	    || { infra_rc=1; multi_rc=1; delivery_rc=1; }; \
	  echo "== make test-infra (whole log: $(TEST_INFRA_LOG))"; \
	  grep -E '^(lab cycle single|  .* +[0-9]+ s$$|deploy-cycle: .* took|test-infra|CPU of|localhost +:|=+ .*(passed|failed|error).* =+$$|make.*Error)' \
	    $(TEST_INFRA_LOG) || true; \
	  echo "== make test-delivery (whole log: $(TEST_DELIVERY_LOG))"; \
	  grep -E '^(stage |staging-run: FAILED|staging-run report|gate .*: (passed|FAILED)|TEST_DELIVERY|CPU of|make.*Error)' \
	    $(TEST_DELIVERY_LOG) || true; \
	  echo "== make test-multi (whole log: $(TEST_MULTI_LOG))"; \
	  grep -E '^(lab cycle multi|  .* s  \(load|drill host-loss: (passed|FAILED)|  requests: |  failed |TEST_MULTI|CPU of|make.*Error)' \
	    $(TEST_MULTI_LOG) || true; \
	  for part in infra:$$infra_rc:$(TEST_INFRA_LOG) delivery:$$delivery_rc:$(TEST_DELIVERY_LOG) \
	    multi:$$multi_rc:$(TEST_MULTI_LOG); do IFS=: read name rc log <<< "$$part"; [ "$$rc" = 0 ] && continue; \
	    echo "== make test-$$name failed (exit $$rc): its last lines, then its failures ($$log):"; \
	    tail -n 40 "$$log"; echo "-- make test-$$name, its failures:"; \
	    grep -E '(FAILED|ERROR) tests/|^fatal:|^failed:|FAILED!|^E  |Error: ' "$$log" | tail -n 40 || true; done; \
	  kill $$cpu 2>/dev/null; wait $$cpu; echo "== the machine's CPUs (minute by minute: $(TEST_CPU_LOG))"; \
	  tail -n 1 $(TEST_CPU_LOG) 2>/dev/null || true; \
	  echo "pytest exit $$pytest_rc, make test-delivery exit $$delivery_rc, make test-infra exit $$infra_rc," \
	    "make test-multi exit $$multi_rc"; \
	  [ $$pytest_rc = 0 ] && [ $$infra_rc = 0 ] && [ $$delivery_rc = 0 ] && [ $$multi_rc = 0 ]

test-fast: setup ## unit tests only
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

up: setup ## deploy the whole stack onto this machine (inventory/local; as root)
	$(BIN)/ansible-playbook playbooks/site.yml

down: setup ## remove the stack's containers and network (data kept; PURGE=true removes volumes and secrets)
	$(BIN)/ansible-playbook playbooks/teardown.yml -e purge=$(or $(PURGE),false)

verify: setup ## read-only testinfra checks of a deployed stack: this machine's, or every host of INVENTORY=inventory/<x>
	$(BIN)/ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/verify.yml

drill: setup ## destructive checks (backup restore, alert drills, credential rotations, upgrade then rollback) of this machine's stack or INVENTORY's; refused for production
	$(BIN)/ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/verify.yml -e verify_drill=true \
	  $(if $(DRILL_SKIP),-e "verify_drill_skip='$(DRILL_SKIP)'")

rotate: setup ## rotate a credential: WHAT=erp-key|rocketchat-token|ca|alerts-token, or several comma-separated (one restart) [INVENTORY=…] (production: CONFIRM=true)
	@test -n "$(WHAT)" || { echo "usage: make rotate WHAT=erp-key|rocketchat-token|ca|alerts-token [INVENTORY=inventory/<x>] [CONFIRM=true]" >&2; exit 2; }
	$(BIN)/ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/rotate.yml \
	  -e rotate_what='$(WHAT)' -e rotate_confirm=$(or $(CONFIRM),false)
.PHONY: rotate

upgrade: setup ## rolling upgrade of this machine's stack or INVENTORY's: preflight, verified backup, then one host at a time (UPGRADE_ARGS)
	$(BIN)/ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/upgrade.yml $(UPGRADE_ARGS)

rollback: setup ## back to the images the last upgrade recorded (releases/previous.json); restores the ERP database if it migrated
	$(BIN)/ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/rollback.yml $(ROLLBACK_ARGS)

mongodb-fcv: setup ## MongoDB's feature compatibility version after an upgrade: every member's version and FCV; raised only with FCV=<x.y> CONFIRM=true [INVENTORY=…]
	$(BIN)/ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/mongodb_fcv.yml \
	  $(if $(FCV),-e 'mongodb_fcv="$(FCV)"') -e mongodb_fcv_confirm=$(or $(CONFIRM),false)
.PHONY: mongodb-fcv

status: setup ## read-only, one screen: containers and health per host, firing alerts, certificate expiry (INVENTORY, default inventory/local)
	$(PY) -m ops.status --inventory $(or $(INVENTORY),inventory/local) $(STATUS_ARGS)
.PHONY: status

# The lab of the single-host cycle (make test-infra): one fresh host.
SINGLE_INVENTORY ?= lab/single
test-infra: setup ## the single-host deployment cycle in a fresh lab host (lab/single; python -m lab.cycle), never this machine's stack: there, as a new user would, make up, verify, the second run changed=0 (--check --diff of site.yml, each layer for real), --tags, drill but the upgrade drill (TEST_INFRA_DRILL_SKIP; make test-delivery judges a single-host upgrade under load); from here make verify INVENTORY=lab/single (read-only: containers unchanged); make down PURGE=true there; lab down
	@$(call refuse_running_lab,$(SINGLE_INVENTORY))
	@if [ -n "$(DRY_RUN)" ]; then echo "make -n: would run, in a fresh lab host ($(SINGLE_INVENTORY)): up, verify, the second run (check mode and each layer), drill, down"; exit 0; fi; \
	  $(PY) -m lab.cycle single -i $(SINGLE_INVENTORY) \
	    --deploy 'make deploy-cycle DRILL_SKIP=$(TEST_INFRA_DRILL_SKIP)' --teardown 'make down PURGE=true'

# Inside a lab host only: lab/cycle.py writes the marker file there and runs this as root. The guard is
# part of the one recipe line, so even `make -n` (which runs lines naming $(MAKE)) stops at it.
LAB_HOST_MARKER := /etc/photomatrix-lab/inventory.yml
deploy-cycle: setup ## in a lab host only (python -m lab.cycle runs it): up, verify, the second run changed=0 (--check --diff, each layer), --tags, drill
	@set -e; if [ ! -f $(LAB_HOST_MARKER) ]; then echo "deploy-cycle deploys onto the machine it runs on:" \
	  "it runs only inside a lab host (no $(LAB_HOST_MARKER) here); run make test-infra" >&2; exit 2; fi; \
	  step() { local start=$$(date +%s); echo "deploy-cycle: $$*"; "$$@"; \
	    echo "deploy-cycle: $$* took $$(( $$(date +%s) - start )) s"; }; \
	  step $(MAKE) up; \
	  step $(MAKE) verify; \
	  step env PHOTOMATRIX_IDEMPOTENCE=1 $(BIN)/pytest -m infra -s -p no:cacheprovider --no-header -q \
	    tests/infra/test_layers.py; \
	  step $(MAKE) drill

# A lab of that name already running is somebody's (make lab-up, a --keep run): make test-multi and make
# test-delivery would redeploy it and remove it, so they refuse instead.
# The status is read whole before it is judged (a pipe into grep -q broke the status' output), and a
# status that cannot be read refuses too: the lab might be running.
define refuse_running_lab
status=$$($(PY) -m lab status -i $(1)) || exit 2; \
if printf '%s\n' "$$status" | grep -v ': no containers$$' | grep -q .; then \
  printf '%s\n' "$$status" >&2; \
  echo "make $@ starts its own lab from $(1) and removes it afterwards, so it refuses to run while that" \
    "lab runs (make lab-up or a --keep run left it): python -m lab down -i $(1) first, if it may go." >&2; \
  exit 2; fi
endef

test-multi: setup ## the production-shaped inventory/lab across its hosts: lab up, docker layer, site.yml, make rotate WHAT=ca then verify, site.yml again (changed=0 on every host), the ERP alerts drill (both ERP hosts post their own alerts through the proxy), the host-loss drill beside three host faults (restart loop, disk nearly full, certificate expiring: each alert in admins), make upgrade then make rollback under load, lab down
	@$(call refuse_running_lab,$(MULTI_INVENTORY))
	$(PY) -m lab.multi -i $(MULTI_INVENTORY) $(MULTI_ARGS)
.PHONY: test-multi

lab-up: setup ## start the lab: the hosts of LAB_INVENTORY (default inventory/lab) and its registry
	$(PY) -m lab up -i $(LAB_INVENTORY)

lab-down: setup ## remove the lab (its containers, volumes, network, key); never what `make up` deployed
	$(PY) -m lab down -i $(LAB_INVENTORY)

security: setup ## bandit, the security suite (secrets, sslyze, probe), then the read-only audit of INVENTORY (default inventory/local): report in .state/security-report/
	$(BIN)/bandit --recursive --configfile pyproject.toml erp bot rocketchat_sim security loadtests collections roles release
	$(BIN)/pytest -q tests/security
	$(PY) -m security.report --inventory $(or $(INVENTORY),inventory/local)

fuzz: setup ## coverage-guided fuzzing (atheris), FUZZ_SECONDS per target (default 300); crashes kept in tests/fuzz/regressions/
	$(PY) -m security.fuzz.run --seconds $(or $(FUZZ_SECONDS),300)

bench: setup ## benchmark scripts (ERP needs Debian's wrk); each prints its figures
	$(PY) loadtests/bench_erp.py
	$(PY) loadtests/bench_sim.py
	$(PY) loadtests/bench_bot.py

load: setup ## load run, PROFILE=smoke|baseline|stress|soak, against TARGET=https://… or a local stack (LOAD_ARGS: more)
	$(PY) -m loadtests run --profile $(or $(PROFILE),smoke) $(if $(TARGET),--target $(TARGET)) $(LOAD_ARGS)

capacity: setup ## stress the local stack: most chat users within the SLOs, first saturated resource (CAPACITY_ARGS)
	$(PY) -m loadtests capacity $(CAPACITY_ARGS)

# Delivery (docs/delivery.md): make release -> make deploy ENV=staging -> make gate -> make promote
# ENV=production, each with MANIFEST=… (default: the latest release), and the release page.
ENV ?= staging
RELEASE = $(PY) -m release $(if $(REGISTRY_CA),--registry-ca $(REGISTRY_CA))
RELEASE_WHERE = $(if $(INVENTORY),--inventory $(INVENTORY)) $(if $(MANIFEST),--manifest $(MANIFEST))

release: setup ## build the images once for this commit and push them to ENV's registry (INVENTORY, or REGISTRY=host:port); manifest by digest + SBOMs in .state/release/<version>/
	$(RELEASE) build --env $(ENV) $(if $(INVENTORY),--inventory $(INVENTORY)) $(if $(REGISTRY),--registry $(REGISTRY))

deploy: setup ## deploy a release by digest: ENV=staging MANIFEST=… [INVENTORY=…]; refused when a digest is not in the registry, and for production (make promote)
	$(RELEASE) deploy --env $(ENV) $(RELEASE_WHERE)

gate: setup ## the staging gate of MANIFEST: make verify (the release's own), make load PROFILE=smoke TARGET=…, the audit of make security; a failure rolls an upgrade back
	$(RELEASE) gate --env $(ENV) $(RELEASE_WHERE) $(if $(TARGET),--target $(TARGET))

promote: setup ## deploy MANIFEST to ENV=production only if it passed the staging gate; verify after, roll back on failure
	$(RELEASE) promote --env $(if $(filter staging,$(ENV)),production,$(ENV)) $(RELEASE_WHERE)

release-page: setup ## the release page of MANIFEST: manifest, SBOMs, gate reports, changelog (release.md next to it)
	$(RELEASE) page $(if $(MANIFEST),--manifest $(MANIFEST))

pipeline: setup ## release, deploy ENV (staging), gate (rollback on failure), release page; prints each stage's time
	$(RELEASE) pipeline --env $(ENV) $(RELEASE_WHERE) $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(TARGET),--target $(TARGET))

test-delivery: setup ## the pipeline for real against the lab release/lab: lab up, release, deploy, gate, upgrade, gate, a broken release rolled back, pages, lab down (STAGING_ARGS=--keep keeps the lab); JSON report
	@$(call refuse_running_lab,release/lab)
	$(RELEASE) staging-run -i release/lab $(STAGING_ARGS)
.PHONY: release deploy gate promote release-page pipeline test-delivery

# First access to the stack `make up` deployed (overridable to point at another server).
RC_URL ?= https://localhost
RC_CA_FILE ?= /srv/photomatrix/pki/ca.crt
RC_ADMIN ?= admin
RC_ADMIN_PASSWORD_FILE ?= /srv/photomatrix/secrets/rocketchat/admin_password
RC_USERS_DIR ?= $(HOME)/.config/rcchat
RCCHAT = $(PY) -m rcchat --url $(RC_URL) $(if $(RC_CA_FILE),--ca-file $(RC_CA_FILE))

user: setup ## create a test employee: make user NAME=ivan.petrov (password into ~/.config/rcchat/NAME.password)
	@test -n "$(NAME)" || { echo "usage: make user NAME=<username>" >&2; exit 2; }
	$(RCCHAT) --user $(RC_ADMIN) --password-file $(RC_ADMIN_PASSWORD_FILE) user create $(NAME) \
	  --new-password-file $(RC_USERS_DIR)/$(NAME).password

chat: setup ## chat in the terminal as that employee: make chat NAME=ivan.petrov [ROOM=@erp-bot]
	@test -n "$(NAME)" || { echo "usage: make chat NAME=<username> [ROOM=@erp-bot]" >&2; exit 2; }
	$(RCCHAT) --user $(NAME) --password-file $(RC_USERS_DIR)/$(NAME).password chat $(or $(ROOM),@erp-bot)

.PHONY: help setup lint format test test-fast up down verify drill upgrade rollback test-infra deploy-cycle lab-up lab-down security fuzz bench load capacity user chat
