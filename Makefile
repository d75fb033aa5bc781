# ---- deployment targets (owner: deployment artefacts; see docs/deploy.md) ----
IMG ?= ghcr.io/podtrace/podtrace:0.1.0
CONTAINER_TOOL ?= docker
KUBECTL ?= kubectl

.PHONY: crds run docker-build deploy undeploy

# Regenerates the CRD from src/session.rs into both checked-in copies
# (config/crd/ needs its own because kustomize refuses files outside its root).
# Written to a temporary file first so a failed build does not truncate the CRD.
crds:
	cargo run -q -- crd > crds/tracesessions.podtrace.dev.yaml.tmp
	mv crds/tracesessions.podtrace.dev.yaml.tmp crds/tracesessions.podtrace.dev.yaml
	cp crds/tracesessions.podtrace.dev.yaml config/crd/tracesessions.podtrace.dev.yaml

# Runs the controller locally against the current kubeconfig context.
run:
	cargo run -- run --log-format=text $(RUN_ARGS)

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
