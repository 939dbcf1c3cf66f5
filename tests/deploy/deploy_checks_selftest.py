#!/usr/bin/env python3
"""Self-test of deploy/tools/deploy_checks.py: on a copy of deploy/, the unchanged files pass,
and each planted mistake makes the check that owns it fail. Run by deploy/check.sh.

Prints one line per case and "N passed, N failed"; exits 1 if any case failed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

results = []


def run_check(root, *args):
    p = subprocess.run([sys.executable, os.path.join(root, "deploy", "tools", "deploy_checks.py"), *args],
                       capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def make_copy(tmp):
    root = os.path.join(tmp, "repo")
    shutil.copytree(os.path.join(REPO, "deploy"), os.path.join(root, "deploy"))
    for source in (("server", "main.cc"), ("client", "proteus_main.cc"), ("tools", "gpu_build.sh")):
        if os.path.exists(os.path.join(REPO, *source)):
            os.makedirs(os.path.join(root, source[0]))
            shutil.copy(os.path.join(REPO, *source), os.path.join(root, *source))
    # The metric names come from telemetry/'s sources (deploy_checks.known_metrics).
    if os.path.isdir(os.path.join(REPO, "telemetry")):
        shutil.copytree(os.path.join(REPO, "telemetry"), os.path.join(root, "telemetry"))
    return root


def edit(root, relpath, old, new, count=1):
    path = os.path.join(root, relpath)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if old not in text:
        raise AssertionError(f"{relpath}: {old!r} not found (self-test out of date)")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, count))


def case(name, command, mutate, expect_in=None, args=()):
    """mutate(root) plants the mistake; `command` must then fail (and print expect_in)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = make_copy(tmp)
        mutate(root)
        rc, out = run_check(root, command, *[a(root) if callable(a) else a for a in args])
        good = rc != 0 and (expect_in is None or expect_in in out)
        results.append(good)
        print(f"{'ok ' if good else 'FAIL'} caught: {name}" + ("" if good else f"\n{out}"))


def render(overlay):
    """The overlay rendered by kubectl's kustomize, parsed; None without kubectl."""
    if shutil.which("kubectl") is None:
        return None
    p = subprocess.run(["kubectl", "kustomize", os.path.join(REPO, "deploy", "k8s", "overlays", overlay)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(p.stderr)
    return [d for d in yaml.safe_load_all(p.stdout) if d]


def server_container(objs):
    d = next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "proteus")
    return d, next(c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "proteus")


def k8s_case(name, overlay, mutate_objs, expect_in):
    objs = render(overlay)
    if objs is None:
        print(f"skip {name}: no kubectl to render the overlay")
        return
    mutate_objs(objs)

    def write(root):
        with open(os.path.join(root, "rendered.yaml"), "w") as f:
            yaml.safe_dump_all(objs, f)
    case(name, "k8s", write, expect_in, args=(overlay, lambda root: os.path.join(root, "rendered.yaml")))


def main():
    # The unchanged copy passes every check (so a failure below is the planted mistake's).
    with tempfile.TemporaryDirectory() as tmp:
        root = make_copy(tmp)
        for command in ("yaml", "prometheusrule", "envoy", "metrics", "flags", "docker", "compose"):
            rc, out = run_check(root, command)
            results.append(rc == 0)
            print(f"{'ok ' if rc == 0 else 'FAIL'} unchanged copy passes `{command}`" + ("" if rc == 0 else f"\n{out}"))
    for overlay in ("cuda", "rocm"):
        objs = render(overlay)
        if objs is not None:
            k8s_case_ok(overlay, objs)

    case("a route naming a missing Envoy cluster", "envoy",
         lambda r: edit(r, "deploy/envoy/envoy.yaml", "route: {cluster: envoy_admin}", "route: {cluster: envoy_admn}"),
         "does not exist")
    case("no session-id hash on the route", "envoy",
         lambda r: edit(r, "deploy/envoy/envoy.yaml", "header_name: x-proteus-session", "header_name: x-other"),
         "does not hash on x-proteus-session")
    case("round-robin instead of a consistent hash", "envoy",
         lambda r: edit(r, "deploy/envoy/envoy.yaml", "lb_policy: RING_HASH", "lb_policy: ROUND_ROBIN"),
         "not a consistent hash")
    case("Envoy YAML that does not parse", "yaml",
         lambda r: edit(r, "deploy/envoy/envoy.yaml", "static_resources:", "static_resources: [", 1),
         "does not parse")
    case("a Dockerfile building with cmake itself", "docker",
         lambda r: edit(r, "deploy/docker/Dockerfile.cuda", "RUN tools/gpu_build.sh build",
                        "RUN cmake -S . -B build/gpu && cmake --build build/gpu"),
         "tools/gpu_build.sh")
    case("the ROCm image building for the CUDA backend", "docker",
         lambda r: edit(r, "deploy/docker/Dockerfile.rocm", "ARG PROTEUS_GPU_BACKEND=rocm",
                        "ARG PROTEUS_GPU_BACKEND=cuda"),
         "for backend cuda, not rocm")
    case("the ROCm image relying on the script's default backend", "docker",
         lambda r: edit(r, "deploy/docker/Dockerfile.rocm", "ARG PROTEUS_GPU_BACKEND=rocm\n", ""),
         "for backend cuda, not rocm")
    case("a backend tools/gpu_build.sh does not accept", "docker",
         lambda r: edit(r, "deploy/docker/Dockerfile.rocm", "ARG PROTEUS_GPU_BACKEND=rocm",
                        "ARG PROTEUS_GPU_BACKEND=hip"),
         "does not accept")
    case("an unpinned base image", "docker",
         lambda r: edit(r, "deploy/docker/Dockerfile.rocm", "ARG RUNTIME_IMAGE=ubuntu:24.04",
                        "ARG RUNTIME_IMAGE=ubuntu:latest"),
         "not pinned")
    case("a root runtime user", "docker",
         lambda r: edit(r, "deploy/docker/Dockerfile.cuda", "USER 10001:10001", "USER root"),
         "non-root")
    case("rules.yml edited without regenerating the PrometheusRule", "prometheusrule",
         lambda r: edit(r, "deploy/prometheus/rules.yml", "> 0.3", "> 0.35"),
         "gen-prometheusrule")
    case("a dashboard series that telemetry does not export", "metrics",
         lambda r: edit(r, "deploy/grafana/dashboards/proteus.json", "proteus_sessions_active{",
                        "proteus_sessions_open{"),
         "proteus_sessions_open")
    if os.path.exists(os.path.join(REPO, "server", "main.cc")):
        case("a flag proteus_server does not define", "flags",
             lambda r: edit(r, "deploy/k8s/base/proteus.flags", "--idle_timeout=10m", "--idle_timeot=10m"),
             "--idle_timeot")
    if os.path.exists(os.path.join(REPO, "client", "proteus_main.cc")):
        case("a HEALTHCHECK flag the `proteus` CLI does not define", "flags",
             lambda r: edit(r, "deploy/docker/Dockerfile.cuda", '"--server=127.0.0.1:50051"',
                            '"--address=127.0.0.1:50051"'),
             "--address")
    case("compose mounting a file that does not exist", "compose",
         lambda r: edit(r, "deploy/compose.yaml", "./prometheus/rules.yml:", "./prometheus/rule.yml:"),
         "does not exist")

    def short_grace(objs):
        server_container(objs)[0]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 60
    k8s_case("terminationGracePeriodSeconds not above --shutdown_grace", "cuda", short_grace,
             "must exceed --shutdown_grace")

    def http_probe(objs):
        server_container(objs)[1]["livenessProbe"] = {"httpGet": {"path": "/", "port": 9090}}
    k8s_case("a liveness probe that is not gRPC", "cuda", http_probe, "not a native gRPC probe")

    def writable_root(objs):
        del server_container(objs)[1]["securityContext"]["readOnlyRootFilesystem"]
    k8s_case("a writable root filesystem", "cuda", writable_root, "readOnlyRootFilesystem")

    def nvidia_on_rocm(objs):
        limits = server_container(objs)[1]["resources"]["limits"]
        limits["nvidia.com/gpu"] = limits.pop("amd.com/gpu")
    k8s_case("the ROCm overlay asking for nvidia.com/gpu", "rocm", nvidia_on_rocm, "GPU limits")

    def unknown_field(objs):
        server_container(objs)[1]["bogusField"] = 1
    k8s_case("a field the Kubernetes API does not have", "cuda", unknown_field, "bogusField")

    def wrong_selector(objs):
        s = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == "proteus-headless")
        s["spec"]["selector"] = {"app.kubernetes.io/name": "protean"}
    k8s_case("a Service selecting no pod", "cuda", wrong_selector, "matches no pod template")

    n_ok = sum(results)
    print(f"{n_ok} passed, {len(results) - n_ok} failed")
    return 0 if all(results) else 1


def k8s_case_ok(overlay, objs):
    with tempfile.TemporaryDirectory() as tmp:
        root = make_copy(tmp)
        path = os.path.join(root, "rendered.yaml")
        with open(path, "w") as f:
            yaml.safe_dump_all(objs, f)
        rc, out = run_check(root, "k8s", overlay, path)
        results.append(rc == 0)
        print(f"{'ok ' if rc == 0 else 'FAIL'} unchanged overlay {overlay} passes `k8s`" + ("" if rc == 0 else f"\n{out}"))


if __name__ == "__main__":
    sys.exit(main())
