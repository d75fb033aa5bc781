.DEFAULT_GOAL := build

# ---- deployment targets (owner: deployment artefacts; see docs/deploy.md) ----
IMG ?= ghcr.io/podtrace/podtrace:0.1.0
CONTAINER_TOOL ?= docker
KUBECTL ?= kubectl

.PHONY: crds run docker-build deploy undeploy

# Regenerates the CRD from src/session.rs into every checked-in copy (config/crd/ needs its
# own because kustomize refuses files outside its root, the Helm chart ships its crds/).
# Written to a temporary file first so a failed build does not truncate the CRD.
crds:
	cargo run -q -- crd > crds/tracesessions.podtrace.dev.yaml.tmp || { rm -f crds/tracesessions.podtrace.dev.yaml.tmp; exit 1; }
	mv crds/tracesessions.podtrace.dev.yaml.tmp crds/tracesessions.podtrace.dev.yaml
	cp crds/tracesessions.podtrace.dev.yaml config/crd/tracesessions.podtrace.dev.yaml
	cp crds/tracesessions.podtrace.dev.yaml charts/podtrace/crds/tracesessions.podtrace.dev.yaml

# Runs the controller locally against the current kubeconfig context. Alone, so without
# leader election (a local Lease would also need a namespace to put it in).
run:
	cargo run -- run --leader-elect=false --log-format=text $(RUN_ARGS)

docker-build:
	$(CONTAINER_TOOL) build -t $(IMG) .

# Applies config/default with IMG substituted through a throwaway overlay, so the
# checked-in kustomization is never edited. Kustomize rejects absolute resource paths,
# hence the relative one.
deploy:
	@img='$(IMG)'; tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- %s\nimages:\n- name: ghcr.io/podtrace/podtrace\n  newName: %s\n  newTag: %s\n' \
		"$$(realpath --relative-to="$$tmp" config/default)" "$${img%:*}" "$${img##*:}" > "$$tmp/kustomization.yaml" && \
	$(KUBECTL) apply --server-side -k "$$tmp"

undeploy:
	$(KUBECTL) delete --ignore-not-found -k config/default
# ---- end of deployment targets ----

# ---- test environment targets (owner: test environment; see docs/testenv.md) ----
.PHONY: testenv-build testenv-up testenv-down testenv-status testenv-backend-stop testenv-backend-start record record-fixture

# Builds etcd, Kubernetes, KWOK and Jaeger from Go modules into ~/.cache/podtrace (cached).
testenv-build:
	tests/env/build.sh

# Starts the local control plane, KWOK nodes and trace backend (no-op when already up).
testenv-up:
	tests/env/up.sh

testenv-down:
	tests/env/down.sh

testenv-status:
	@tests/env/backend.sh status >/dev/null && echo "backend: up" || echo "backend: down"
	@test -f $${PODTRACE_TESTENV_DIR:-.testenv}/env.json && echo "cluster: up ($${PODTRACE_TESTENV_DIR:-.testenv}/env.sh)" || echo "cluster: down"

testenv-backend-stop:
	tests/env/backend.sh stop

testenv-backend-start:
	tests/env/backend.sh start

# Records Pod/Event/Node watch streams into RECORD_DIR, for RECORD_SECONDS or until Ctrl-C.
RECORD_DIR ?= recording
RECORD_SECONDS ?=
record:
	tests/env/record.sh $(RECORD_DIR) $(RECORD_SECONDS)

# Re-records tests/fixtures/recorded from its fixed scenario.
record-fixture:
	tests/env/record-fixture.sh
# ---- end of test environment targets ----

# ---- placeholders (owner: lead) ----
.PHONY: build test e2e
build:
	cargo build

# The test command (README, CI): real test environment up, every test, environment down.
test:
	tests/run.sh

e2e: testenv-up
	cargo test --features e2e
# ---- end of placeholders ----
