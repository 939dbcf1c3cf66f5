#!/usr/bin/env bash
# deploy/check.sh: the offline CI checks of deploy/ (issue 8). Runs on Debian 12 from any
# folder; installs what it needs when missing (idempotent; no network when all is there):
#   apt:  yamllint, prometheus (for promtool)          --no-install-recommends
#   pip:  kubernetes-validate (bundled API schemas)    into the venv build/deploy-venv
#   kubectl's built-in kustomize renders the overlays when kubectl (or kustomize) is on PATH.
#
# Checks: every YAML/JSON file parses; yamllint (deploy/.yamllint); promtool check config,
# check rules, test rules, and the dashboard's PromQL; the PrometheusRule is rules.yml's groups;
# the rendered overlays (cuda, rocm) pass kubernetes-validate --strict against Kubernetes 1.27
# and the newest bundled version, and cross-checks (probes, GPU, security, grace period vs
# --shutdown_grace, selectors, ports, mounts, Envoy's upstream Service); Envoy's config names
# only existing clusters and is session-affine; metric names come from DESIGN.md §4 /
# telemetry; the flags passed exist in server/main.cc; the Dockerfiles build through
# tools/gpu_build.sh, each for its backend (PROTEUS_GPU_BACKEND: cuda, rocm; a value the script
# accepts); compose.yaml's references resolve; and the checker catches planted
# mistakes (tests/deploy/deploy_checks_selftest.py).
#
# Exits non-zero if any step failed; the last line reads "deploy/check.sh: N passed, N failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${PROTEUS_DEPLOY_VENV:-build/deploy-venv}
KUBERNETES_VALIDATE_VERSION=1.37.0
SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi

passed=0
failed=0
failed_steps=()
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() {  # step NAME COMMAND...: runs COMMAND, prints its output and PASS/FAIL.
  local name=$1; shift
  echo "--- $name"
  if "$@"; then
    echo "PASS $name"
    passed=$((passed + 1))
  else
    echo "FAIL $name"
    failed=$((failed + 1))
    failed_steps+=("$name")
  fi
}

# ---- set-up ---------------------------------------------------------------------------------
setup_apt() {
  local missing=()
  command -v yamllint >/dev/null || missing+=(yamllint)
  command -v promtool >/dev/null || missing+=(prometheus)
  (( ${#missing[@]} )) || return 0
  echo "check.sh: apt-get install ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq -o DPkg::Lock::Timeout=600 &&
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
}

setup_python() {
  if "$VENV/bin/python" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
    PY=$VENV/bin/python
    return 0
  fi
  echo "check.sh: kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV"
  if python3 -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; false; }; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" pyyaml &&
      PY=$VENV/bin/python && return 0
  fi
  # No venv module (Debian without python3-venv): the user site.
  echo "check.sh: venv unavailable, pip install --user"
  python3 -m pip install -q --user --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" pyyaml &&
    python3 -c 'import kubernetes_validate, yaml' && PY=python3
}

PY=
step "set-up: yamllint and promtool (apt)" setup_apt
step "set-up: kubernetes-validate (pip)" setup_python
[[ -n $PY ]] || PY=python3
checks() { "$PY" deploy/tools/deploy_checks.py "$@"; }

# ---- YAML -----------------------------------------------------------------------------------
step "every YAML and JSON file under deploy/ parses" checks yaml
step "yamllint -c deploy/.yamllint deploy" yamllint -s -c deploy/.yamllint deploy

# ---- Prometheus -----------------------------------------------------------------------------
step "promtool check config deploy/prometheus/prometheus.yml" \
  promtool check config deploy/prometheus/prometheus.yml
step "promtool check rules deploy/prometheus/rules.yml" \
  promtool check rules deploy/prometheus/rules.yml
step "promtool test rules deploy/prometheus/rules_test.yml" \
  promtool test rules deploy/prometheus/rules_test.yml
dashboard_promql() {
  checks dashboard-rules "$work/dashboard-rules.yml" &&
    promtool check rules "$work/dashboard-rules.yml"
}
step "the Grafana dashboard's PromQL parses (promtool)" dashboard_promql
step "k8s PrometheusRule = deploy/prometheus/rules.yml" checks prometheusrule
step "metric names are DESIGN.md §4 / telemetry names" checks metrics

# ---- Kubernetes -----------------------------------------------------------------------------
kustomize_build() {  # kustomize_build DIR OUT
  if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
    kubectl kustomize "$1" >"$2"
  elif command -v kustomize >/dev/null; then
    kustomize build "$1" >"$2"
  else
    return 127
  fi
}
k8s_overlay() {  # k8s_overlay NAME
  local out=$work/$1.yaml rc=0
  kustomize_build "deploy/k8s/overlays/$1" "$out" || rc=$?
  if (( rc == 127 )); then
    # No kustomize here: validate what exists as plain files (base, Envoy, the overlay's
    # namespace); the overlays' patches are partial objects and are only parsed.
    echo "WARN: no kubectl/kustomize: overlay $1 not rendered; base files validated one by one"
    "$PY" -m kubernetes_validate --strict -k 1.27.0 \
      deploy/k8s/base/{serviceaccount,deployment,service,pdb}.yaml \
      deploy/envoy/k8s.yaml "deploy/k8s/overlays/$1/namespace.yaml"
    return
  fi
  (( rc == 0 )) || { echo "kustomize failed on deploy/k8s/overlays/$1"; return 1; }
  echo "rendered deploy/k8s/overlays/$1: $(grep -c '^kind:' "$out") objects"
  checks k8s "$1" "$out"
}
step "k8s overlay cuda: render + schemas + cross-checks" k8s_overlay cuda
step "k8s overlay rocm: render + schemas + cross-checks" k8s_overlay rocm
step "k8s secret.example.yaml (placeholders) passes the schemas" \
  "$PY" -m kubernetes_validate --strict --quiet -k 1.27.0 deploy/k8s/base/secret.example.yaml

# ---- Envoy, flags, Dockerfiles, compose ------------------------------------------------------
step "envoy.yaml parses, routes name existing clusters, session-affine" checks envoy
step "server flags passed by deploy/ exist in server/main.cc" checks flags
step "Dockerfiles: pinned bases, build = tools/gpu_build.sh for the image's backend, non-root, HEALTHCHECK" \
  checks docker
grep_build_script() {  # The literal requirement: the build step calls the GPU build script.
  local f ok=0
  for f in deploy/docker/Dockerfile.cuda deploy/docker/Dockerfile.rocm; do
    if grep -qE '^RUN .*tools/gpu_build\.sh build' "$f"; then
      echo "$f: $(grep -E '^RUN .*tools/gpu_build\.sh build' "$f")"
    else
      echo "$f: no 'RUN ... tools/gpu_build.sh build'"; ok=1
    fi
  done
  return $ok
}
step "grep: the Dockerfiles' build step is tools/gpu_build.sh build" grep_build_script
step "compose.yaml references resolve" checks compose
step "bash -n deploy/check.sh" bash -n deploy/check.sh

# ---- the checker itself ---------------------------------------------------------------------
step "the checks catch planted mistakes (tests/deploy/deploy_checks_selftest.py)" \
  "$PY" tests/deploy/deploy_checks_selftest.py

echo
if (( failed )); then
  echo "deploy/check.sh: failed steps:"
  printf '  - %s\n' "${failed_steps[@]}"
fi
echo "deploy/check.sh: $passed passed, $failed failed"
(( failed == 0 ))
