#!/usr/bin/env python3
"""The offline checks of deploy/ that need more than a linter (deploy/check.sh runs them).

    deploy_checks.py gen-prometheusrule        rewrite k8s/base/prometheusrule.yaml from
                                               prometheus/rules.yml
    deploy_checks.py yaml                      every YAML file under deploy/ parses
    deploy_checks.py prometheusrule            the PrometheusRule holds exactly rules.yml's groups
    deploy_checks.py k8s NAME RENDERED.yaml... schema (kubernetes-validate, bundled schemas) and
                                               cross-reference checks of rendered manifests
    deploy_checks.py envoy                     envoy.yaml: parses, every named cluster exists,
                                               session affinity and gRPC health are configured
    deploy_checks.py metrics                   every proteus_* series used by the rules and the
                                               dashboard is a DESIGN.md §4 / metrics.h name
    deploy_checks.py flags                     every flag the deployment passes exists in
                                               server/main.cc (or is a listed assumption)
    deploy_checks.py docker                    Dockerfiles: pinned bases, the build is
                                               tools/gpu_build.sh for the image's backend,
                                               non-root, HEALTHCHECK
    deploy_checks.py compose                   compose.yaml: references resolve, files exist
    deploy_checks.py dashboard-rules OUT.yml   the dashboard's queries as recording rules, for
                                               `promtool check rules` (PromQL syntax)

Each command prints "ok: ..." lines, "WARN: ..." lines for known assumptions, and "FAIL: ..."
lines; it exits 1 if anything failed. Needs PyYAML; `k8s` also needs kubernetes-validate.
"""
import json
import os
import re
import sys

import yaml

DEPLOY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(DEPLOY)

# DESIGN.md §4, used when telemetry/ does not exist yet and ../shared/DESIGN.md is not beside the
# repository.
DESIGN_METRICS = {
    "proteus_requests_total", "proteus_request_duration_seconds",
    "proteus_chunk_duration_seconds", "proteus_ingested_tokens_total", "proteus_sessions_active",
    "proteus_session_resident_tokens", "proteus_gpu_memory_used_bytes",
    "proteus_router_tokens_total", "proteus_router_gate_entropy_ratio",
    "proteus_router_gate_usage_perplexity", "proteus_router_gates_unused",
    "proteus_router_load_balance_ratio", "proteus_dna_drift_cosine_distance",
    "proteus_kv_evicted_blocks_total",
}
# Series deploy/ uses that §4 does not name yet: each is a request to the telemetry work.
ASSUMED_METRICS = {}
# Flags deploy/ passes that server/main.cc does not define yet.
ASSUMED_FLAGS = {}

failures = []


def ok(msg):
    print(f"ok: {msg}")


def warn(msg):
    print(f"WARN: {msg}")


def fail(msg):
    failures.append(msg)
    print(f"FAIL: {msg}")


def rel(path):
    return os.path.relpath(path, REPO)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def deploy_yaml_files():
    out = []
    for root, dirs, files in os.walk(DEPLOY):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith((".yaml", ".yml")) or name == ".yamllint":
                out.append(os.path.join(root, name))
    return out


# --------------------------------------------------------------------------------------------
# PrometheusRule <- rules.yml

RULES = os.path.join(DEPLOY, "prometheus", "rules.yml")
PROMRULE = os.path.join(DEPLOY, "k8s", "base", "prometheusrule.yaml")
PROMRULE_HEADER = """\
# GENERATED from deploy/prometheus/rules.yml by
#   python3 deploy/tools/deploy_checks.py gen-prometheusrule
# Do not edit: edit rules.yml and regenerate (deploy/check.sh fails while they differ).
# Your Prometheus must select this rule (its ruleSelector, often a `release: <name>` label).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: proteus
  labels:
    app.kubernetes.io/name: proteus
spec:
"""


def render_prometheusrule():
    with open(RULES, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = ["  " + line if line.strip() else "" for line in lines[start:]]
    return PROMRULE_HEADER + "\n".join(body) + "\n"


def cmd_gen_prometheusrule(_args):
    with open(PROMRULE, "w", encoding="utf-8") as f:
        f.write(render_prometheusrule())
    ok(f"wrote {rel(PROMRULE)}")


def cmd_prometheusrule(_args):
    want = render_prometheusrule()
    with open(PROMRULE, encoding="utf-8") as f:
        have = f.read()
    if have != want:
        fail(f"{rel(PROMRULE)} is not rules.yml's groups: run "
             "python3 deploy/tools/deploy_checks.py gen-prometheusrule")
        return
    rules_groups = load_all(RULES)[0]["groups"]
    cr = load_all(PROMRULE)[0]
    if cr["spec"]["groups"] != rules_groups:
        fail(f"{rel(PROMRULE)}: spec.groups differ from rules.yml after parsing")
        return
    ok(f"{rel(PROMRULE)} holds the {len(rules_groups)} groups of rules.yml")


# --------------------------------------------------------------------------------------------
# YAML


def cmd_yaml(_args):
    n = 0
    for path in deploy_yaml_files():
        try:
            docs = load_all(path)
        except yaml.YAMLError as e:
            fail(f"{rel(path)} does not parse: {e}")
            continue
        if not docs:
            fail(f"{rel(path)} is empty")
            continue
        n += 1
    for path in [os.path.join(DEPLOY, "grafana", "dashboards", f)
                 for f in sorted(os.listdir(os.path.join(DEPLOY, "grafana", "dashboards")))
                 if f.endswith(".json")]:
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
            n += 1
        except ValueError as e:
            fail(f"{rel(path)} is not JSON: {e}")
    ok(f"{n} YAML/JSON files parse")


# --------------------------------------------------------------------------------------------
# Kubernetes


def parse_flags_file(text):
    flags = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"--([A-Za-z0-9_]+)(?:=(.*))?$", line)
        if not m:
            raise ValueError(f"not a --flag line: {line!r}")
        flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
    return flags


def parse_duration_s(text):
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    for value, unit in parts:
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def match_labels(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def cmd_k8s(args):
    import kubernetes_validate

    name, files = args[0], args[1:]
    objs = []
    for path in files:
        for doc in load_all(path):
            objs.append(doc)
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)

    # 1. Schemas of the Kubernetes API (bundled with kubernetes-validate, offline, strict: an
    #    unknown field is an error). 1.27: native gRPC probes are GA; the newest: still valid.
    versions = ["1.27.0", kubernetes_validate.utils.latest_version()]
    crds = []
    for o in objs:
        kn = f"{o['kind']}/{o['metadata']['name']}"
        if o["apiVersion"].startswith("monitoring.coreos.com/"):
            crds.append(o)
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(o, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                fail(f"[{name}] {kn} against Kubernetes {v}: {path}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                fail(f"[{name}] {kn}: {e.message}")
    ok(f"[{name}] {len(objs) - len(crds)} objects pass kubernetes-validate --strict "
       f"(Kubernetes {' and '.join(versions)})")

    # 2. Prometheus Operator objects (no bundled schema): the fields that matter.
    services = by_kind.get("Service", [])
    for o in crds:
        kn = f"{o['kind']}/{o['metadata']['name']}"
        spec = o.get("spec", {})
        if o["kind"] == "ServiceMonitor":
            sel = spec.get("selector", {}).get("matchLabels", {})
            matched = [s for s in services if sel and match_labels(sel, s["metadata"].get("labels", {}))]
            if not matched:
                fail(f"[{name}] {kn}: selector {sel} matches no Service")
            for ep in spec.get("endpoints", []):
                for s in matched:
                    if ep.get("port") not in [p.get("name") for p in s["spec"]["ports"]]:
                        fail(f"[{name}] {kn}: Service {s['metadata']['name']} has no port named "
                             f"{ep.get('port')!r}")
        elif o["kind"] == "PrometheusRule":
            groups = spec.get("groups")
            if groups != load_all(RULES)[0]["groups"]:
                fail(f"[{name}] {kn}: groups differ from deploy/prometheus/rules.yml")
        else:
            fail(f"[{name}] {kn}: unexpected Prometheus Operator kind")
    ok(f"[{name}] {len(crds)} Prometheus Operator objects checked")

    # 3. The server Deployment: what deploy/README.md promises.
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    server = deployments.get("proteus")
    if server is None:
        fail(f"[{name}] no Deployment 'proteus'")
        return
    pod = server["spec"]["template"]["spec"]
    pod_labels = server["spec"]["template"]["metadata"]["labels"]
    if not match_labels(server["spec"]["selector"]["matchLabels"], pod_labels):
        fail(f"[{name}] Deployment proteus: selector does not match its pod labels")
    c = next(c for c in pod["containers"] if c["name"] == "proteus")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    gpu = {k: v for k, v in c["resources"].get("limits", {}).items() if k.endswith("/gpu")}
    want_gpu = "amd.com/gpu" if name == "rocm" else "nvidia.com/gpu"
    if gpu != {want_gpu: 1}:
        fail(f"[{name}] container proteus: GPU limits {gpu}, want {{{want_gpu}: 1}}")
    req_gpu = {k: v for k, v in c["resources"].get("requests", {}).items() if k.endswith("/gpu")}
    if req_gpu and req_gpu != gpu:
        fail(f"[{name}] container proteus: GPU requests {req_gpu} differ from limits {gpu}")
    for res in ("cpu", "memory"):
        for kind in ("requests", "limits"):
            if res not in c["resources"].get(kind, {}):
                fail(f"[{name}] container proteus: no {kind}.{res}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        p = c.get(probe)
        if not p or "grpc" not in p:
            fail(f"[{name}] container proteus: {probe} is not a native gRPC probe")
        elif p["grpc"].get("port") != ports.get("grpc"):
            fail(f"[{name}] container proteus: {probe} port {p['grpc'].get('port')} is not the "
                 f"grpc containerPort {ports.get('grpc')}")
    sc = c.get("securityContext", {})
    psc = pod.get("securityContext", {})
    if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
        fail(f"[{name}] container proteus: runAsNonRoot is not set")
    if not sc.get("readOnlyRootFilesystem"):
        fail(f"[{name}] container proteus: readOnlyRootFilesystem is not set")
    if sc.get("allowPrivilegeEscalation", True):
        fail(f"[{name}] container proteus: allowPrivilegeEscalation is not false")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    for var in ("PROTEUS_CACHE_DIR", "TMPDIR"):
        path = env.get(var)
        vol = volumes.get(mounts.get(path, ""), {})
        if not path or "emptyDir" not in vol:
            fail(f"[{name}] container proteus: ${var} ({path}) is not an emptyDir mount")
    for m in c.get("volumeMounts", []):
        if m["name"] not in volumes:
            fail(f"[{name}] container proteus: mount of unknown volume {m['name']}")

    # Flags: from the ConfigMap the --flagfile names.
    flagfile = next((a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--flagfile=")), None)
    flags = {}
    if not flagfile:
        fail(f"[{name}] container proteus: no --flagfile argument")
    else:
        vol = volumes.get(mounts.get(os.path.dirname(flagfile), ""), {})
        cm_name = vol.get("configMap", {}).get("name")
        cm = configmaps.get(cm_name)
        if cm is None:
            fail(f"[{name}] --flagfile {flagfile}: no ConfigMap mounted at its folder")
        else:
            text = cm.get("data", {}).get(os.path.basename(flagfile))
            if text is None:
                fail(f"[{name}] ConfigMap {cm_name} has no key {os.path.basename(flagfile)}")
            else:
                try:
                    flags = parse_flags_file(text)
                except ValueError as e:
                    fail(f"[{name}] ConfigMap {cm_name}: {e}")
    for v in volumes.values():
        if "secret" in v and not v["secret"].get("optional"):
            secret = v["secret"]["secretName"]
            if secret not in [s["metadata"]["name"] for s in by_kind.get("Secret", [])] and \
               secret not in [s["metadata"]["name"] for s in load_all(SECRET_EXAMPLE)]:
                fail(f"[{name}] volume {v['name']}: Secret {secret} is neither rendered nor in "
                     f"{rel(SECRET_EXAMPLE)}")
    # Every file flag points into a mount.
    for flag in ("token_file", "tls_cert", "tls_key", "client_ca", "model"):
        if flag in flags and flags[flag]:
            path = flags[flag]
            if flag == "model":
                continue  # inside the image
            if not any(path.startswith(mp.rstrip("/") + "/") for mp in mounts):
                fail(f"[{name}] --{flag}={path} is not under a mounted volume")
    if "shutdown_grace" in flags:
        grace = parse_duration_s(flags["shutdown_grace"])
        tgps = pod.get("terminationGracePeriodSeconds", 30)
        if not tgps > grace + 10:
            fail(f"[{name}] terminationGracePeriodSeconds {tgps} must exceed --shutdown_grace "
                 f"({grace:g} s) by more than 10 s")
        else:
            ok(f"[{name}] terminationGracePeriodSeconds {tgps} > --shutdown_grace {grace:g} s + 10 s")
    else:
        fail(f"[{name}] the flags file does not set --shutdown_grace")
    listen_ports = [int(a.rsplit(":", 1)[1]) for a in flags.get("listen", "").split(",") if ":" in a]
    if ports.get("grpc") not in listen_ports:
        fail(f"[{name}] grpc containerPort {ports.get('grpc')} is not in --listen {flags.get('listen')}")
    if "metrics_port" in flags and int(flags["metrics_port"]) != ports.get("metrics"):
        fail(f"[{name}] metrics containerPort {ports.get('metrics')} != --metrics_port {flags['metrics_port']}")

    # 4. Services, PDBs and Deployments select what they should; targetPorts exist.
    all_pods = [(d["metadata"]["name"], d["spec"]["template"]) for d in deployments.values()]
    for s in services:
        sel = s["spec"].get("selector", {})
        targets = [(n, t) for n, t in all_pods if match_labels(sel, t["metadata"]["labels"])]
        if not targets:
            fail(f"[{name}] Service {s['metadata']['name']}: selector {sel} matches no pod template")
            continue
        for n, t in targets:
            names = {p.get("name"): p["containerPort"] for ct in t["spec"]["containers"] for p in ct.get("ports", [])}
            for p in s["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                if (isinstance(tp, str) and tp not in names) or (isinstance(tp, int) and tp not in names.values()):
                    fail(f"[{name}] Service {s['metadata']['name']}: targetPort {tp} is not a port of {n}")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        sel = pdb["spec"]["selector"]["matchLabels"]
        if not any(match_labels(sel, t["metadata"]["labels"]) for _, t in all_pods):
            fail(f"[{name}] PDB {pdb['metadata']['name']}: selector matches no pod template")
    # ConfigMaps referenced by volumes exist (kustomize rewrote generated names).
    for dn, t in all_pods:
        for v in t["spec"].get("volumes", []):
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                fail(f"[{name}] Deployment {dn}: ConfigMap {v['configMap']['name']} not rendered")
    # Envoy reaches the servers through the headless Service on the gRPC port.
    envoy = load_all(ENVOY)[0]
    upstream = next(c for c in envoy["static_resources"]["clusters"] if c["name"] == "proteus")
    addrs = [ep["endpoint"]["address"]["socket_address"]
             for grp in upstream["load_assignment"]["endpoints"] for ep in grp["lb_endpoints"]]
    if "Deployment" in by_kind and "proteus-envoy" in deployments:
        for a in addrs:
            s = next((s for s in services if s["metadata"]["name"] == a["address"]), None)
            if s is None:
                fail(f"[{name}] envoy upstream {a['address']} is not a Service here")
            elif s["spec"].get("clusterIP") != "None":
                fail(f"[{name}] envoy upstream Service {a['address']} is not headless")
            elif a["port_value"] not in [p["port"] for p in s["spec"]["ports"]]:
                fail(f"[{name}] envoy upstream port {a['port_value']} is not a port of {a['address']}")
    ok(f"[{name}] Deployment, Services, PDBs, probes, security and flags cross-checked")


SECRET_EXAMPLE = os.path.join(DEPLOY, "k8s", "base", "secret.example.yaml")

# --------------------------------------------------------------------------------------------
# Envoy

ENVOY = os.path.join(DEPLOY, "envoy", "envoy.yaml")
SESSION_HEADER = "x-proteus-session"


def walk(node, path=()):
    """Yields (path, dict) for every mapping in a parsed YAML tree."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, path + (i,))


def cmd_envoy(_args):
    docs = load_all(ENVOY)
    if len(docs) != 1:
        fail(f"{rel(ENVOY)}: want one YAML document, got {len(docs)}")
        return
    cfg = docs[0]
    clusters = {c["name"]: c for c in cfg.get("static_resources", {}).get("clusters", [])}
    if not clusters:
        fail(f"{rel(ENVOY)}: no static clusters")
    named = []
    for path, node in walk(cfg.get("static_resources", {}).get("listeners", [])):
        if "route" in node and isinstance(node["route"], dict):
            r = node["route"]
            if "cluster" in r:
                named.append((r["cluster"], r))
            for wc in r.get("weighted_clusters", {}).get("clusters", []):
                named.append((wc["name"], r))
            for m in r.get("request_mirror_policies", []):
                named.append((m["cluster"], r))
            if "cluster_header" in r:
                fail(f"{rel(ENVOY)}: cluster_header routes cannot be checked statically")
    for cname, _ in named:
        if cname not in clusters:
            fail(f"{rel(ENVOY)}: a route names cluster {cname!r}, which does not exist")
    for cname, c in clusters.items():
        if c.get("load_assignment", {}).get("cluster_name") != cname:
            fail(f"{rel(ENVOY)}: cluster {cname}: load_assignment.cluster_name differs")
    ok(f"{rel(ENVOY)}: {len(named)} routes name {len(set(n for n, _ in named))} clusters, all defined "
       f"({', '.join(sorted(clusters))})")
    # Session affinity: every route to the server cluster hashes the session header, the cluster
    # is a consistent-hash one, speaks HTTP/2 upstream and health-checks over gRPC.
    to_server = [r for n, r in named if n == "proteus"]
    if not to_server:
        fail(f"{rel(ENVOY)}: no route reaches cluster 'proteus'")
    for r in to_server:
        headers = [h.get("header", {}).get("header_name") for h in r.get("hash_policy", [])]
        if SESSION_HEADER not in headers:
            fail(f"{rel(ENVOY)}: a route to 'proteus' does not hash on {SESSION_HEADER}")
    c = clusters.get("proteus", {})
    if c.get("lb_policy") not in ("RING_HASH", "MAGLEV"):
        fail(f"{rel(ENVOY)}: cluster proteus lb_policy {c.get('lb_policy')} is not a consistent hash")
    opts = c.get("typed_extension_protocol_options", {}).get(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {})
    if "http2_protocol_options" not in opts.get("explicit_http_config", {}):
        fail(f"{rel(ENVOY)}: cluster proteus does not speak HTTP/2 upstream")
    if not any("grpc_health_check" in hc for hc in c.get("health_checks", [])):
        fail(f"{rel(ENVOY)}: cluster proteus has no gRPC health check")
    ports = [l["address"]["socket_address"]["port_value"]
             for l in cfg["static_resources"]["listeners"]]
    if len(ports) != len(set(ports)):
        fail(f"{rel(ENVOY)}: two listeners share a port: {ports}")
    ok(f"{rel(ENVOY)}: routes to 'proteus' hash {SESSION_HEADER} onto {c.get('lb_policy')}, "
       "HTTP/2 upstream, gRPC health checks")


# --------------------------------------------------------------------------------------------
# Metric names


def known_metrics():
    """(names, source): metrics.h's literals if telemetry/ has them, else DESIGN.md §4."""
    tele = os.path.join(REPO, "telemetry")
    names = set()
    if os.path.isdir(tele):
        for f in sorted(os.listdir(tele)):
            if f.endswith((".h", ".cc")) and not f.endswith("_test.cc"):
                with open(os.path.join(tele, f), encoding="utf-8") as fh:
                    names |= set(re.findall(r'"(proteus_[a-z0-9_]+)"', fh.read()))
        if names:
            return names, "telemetry/*.h,*.cc"
    design = os.path.join(os.path.dirname(REPO), "shared", "DESIGN.md")
    if os.path.exists(design):
        with open(design, encoding="utf-8") as fh:
            text = fh.read()
        m = re.search(r"^## 4\..*?(?=^## 5\.)", text, re.S | re.M)
        if m:
            names = set(re.findall(r"`(proteus_[a-z0-9_]+)", m.group(0)))
            if names:
                return names, "DESIGN.md §4"
    return set(DESIGN_METRICS), "DESIGN.md §4 (copy in deploy_checks.py)"


def used_metrics(text):
    names = set(re.findall(r"\b(proteus_[a-z0-9_]+)", text))
    out = set()
    for n in names:
        for suffix in ("_bucket", "_sum", "_count"):
            if n.endswith(suffix) and n[: -len(suffix)].endswith("_seconds"):
                n = n[: -len(suffix)]
        out.add(n)
    return out


def cmd_metrics(_args):
    known, source = known_metrics()
    files = [RULES, os.path.join(DEPLOY, "grafana", "dashboards", "proteus.json")]
    used = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith(".json"):
            text = " ".join(t.get("expr", "") for p in json.loads(text)["panels"]
                            for t in p.get("targets", []))
        else:
            text = " ".join(r["expr"] for g in yaml.safe_load(text)["groups"] for r in g["rules"])
        for n in used_metrics(text):
            used.setdefault(n, []).append(rel(path))
    for n in sorted(used):
        if n in known:
            continue
        if n in ASSUMED_METRICS:
            warn(f"{n} ({ASSUMED_METRICS[n]}) is not in {source} yet; used by "
                 f"{', '.join(used[n])}")
        else:
            fail(f"{n}, used by {', '.join(used[n])}, is not a metric of {source}")
    unused = sorted(known - set(used))
    if unused:
        warn(f"not on the dashboard or in the rules: {', '.join(unused)}")
    ok(f"{len(used)} proteus_* series used by the rules and the dashboard; names from {source}")


# --------------------------------------------------------------------------------------------
# Flags


def server_flags():
    main = os.path.join(REPO, "server", "main.cc")
    if not os.path.exists(main):
        return None
    with open(main, encoding="utf-8") as f:
        return set(re.findall(r"ABSL_FLAG\(\s*[^,]+,\s*([a-z0-9_]+)\s*,", f.read()))


def cmd_flags(_args):
    defined = server_flags()
    builtin = {"flagfile", "fromenv", "tryfromenv", "undefok"}
    sources = {rel(os.path.join(DEPLOY, "k8s", "base", "proteus.flags")):
               open(os.path.join(DEPLOY, "k8s", "base", "proteus.flags")).read(),
               rel(os.path.join(DEPLOY, "compose", "proteus.flags")):
               open(os.path.join(DEPLOY, "compose", "proteus.flags")).read()}
    for df in ("Dockerfile.cuda", "Dockerfile.rocm"):
        path = os.path.join(DEPLOY, "docker", df)
        text = open(path).read()
        m = re.search(r"^CMD (\[.*?\])\s*$", text.replace("\\\n", " "), re.M)
        if not m:
            fail(f"{rel(path)}: no CMD [...] line")
            continue
        sources[rel(path)] = "\n".join(json.loads(m.group(1)))
    used = {}
    for src, text in sources.items():
        try:
            for flag in parse_flags_file(text):
                used.setdefault(flag, []).append(src)
        except ValueError as e:
            fail(f"{src}: {e}")
    # The HEALTHCHECK's `proteus health` flags, against the CLI's (client/proteus_main.cc).
    cli_main = os.path.join(REPO, "client", "proteus_main.cc")
    for df in ("Dockerfile.cuda", "Dockerfile.rocm"):
        text = open(os.path.join(DEPLOY, "docker", df)).read().replace("\\\n", " ")
        m = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])\s*$", text, re.M)
        argv = json.loads(m.group(1)) if m else []
        if argv[1:2] != ["health"]:
            fail(f"deploy/docker/{df}: HEALTHCHECK is not `proteus health ...`: {argv}")
        elif os.path.exists(cli_main):
            with open(cli_main, encoding="utf-8") as f:
                cli_flags = set(re.findall(r"ABSL_FLAG\(\s*[^,]+,\s*([a-z0-9_]+)\s*,", f.read()))
            for a in argv[2:]:
                flag = re.match(r"--([a-z0-9_]+)", a)
                if flag and flag.group(1) not in cli_flags:
                    fail(f"deploy/docker/{df}: HEALTHCHECK passes --{flag.group(1)}, which "
                         "client/proteus_main.cc does not define")
        else:
            warn("client/proteus_main.cc does not exist: the HEALTHCHECK's flags not checked")
    if defined is None:
        warn("server/main.cc does not exist: flag names not checked")
        return
    for flag in sorted(used):
        if flag in defined or flag in builtin:
            continue
        if flag in ASSUMED_FLAGS:
            warn(f"--{flag} ({ASSUMED_FLAGS[flag]}) is not defined in server/main.cc yet; "
                 f"passed by {', '.join(used[flag])}")
        else:
            fail(f"--{flag}, passed by {', '.join(used[flag])}, is not defined in server/main.cc")
    ok(f"{len(used)} server flags passed by deploy/ checked against server/main.cc")


# --------------------------------------------------------------------------------------------
# Dockerfiles


# The backend each image must build for (tools/gpu_build.sh's PROTEUS_GPU_BACKEND).
DOCKER_BACKEND = {"Dockerfile.cuda": "cuda", "Dockerfile.rocm": "rocm"}


def gpu_build_backends():
    """(backends tools/gpu_build.sh accepts, its default), read from the script itself."""
    path = os.path.join(REPO, "tools", "gpu_build.sh")
    if not os.path.exists(path):
        return None, None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    default = re.search(r"backend=\$\{PROTEUS_GPU_BACKEND:-(\w+)\}", text)
    switch = re.search(r"^case \$backend in\n(.*?)^esac", text, re.S | re.M)
    accepted = re.findall(r"^\s*(\w+)\)", switch.group(1), re.M) if switch else []
    return accepted, default.group(1) if default else None


def stage_backend(body):
    """The PROTEUS_GPU_BACKEND a stage's `tools/gpu_build.sh build` sees (ARG, ENV or inline on
    the RUN line; the last one wins), or None when the stage sets none."""
    backend = None
    for l in body:
        if re.match(r"(ARG|ENV)\b", l) or (re.match(r"RUN\b", l) and "gpu_build.sh" in l):
            for m in re.finditer(r"(?:^|\s)PROTEUS_GPU_BACKEND=(\S+)", l):
                backend = m.group(1).strip("\"'")
    return backend


def cmd_docker(_args):
    accepted, default = gpu_build_backends()
    if not accepted or not default:
        fail("tools/gpu_build.sh: no PROTEUS_GPU_BACKEND switch found (backend=${PROTEUS_GPU_BACKEND:-...}"
             " and a `case $backend in` naming the backends)")
    for df in ("Dockerfile.cuda", "Dockerfile.rocm"):
        path = os.path.join(DEPLOY, "docker", df)
        before = len(failures)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        joined = re.sub(r"\\\n", " ", text)
        lines = [l for l in joined.splitlines() if l.strip() and not l.lstrip().startswith("#")]
        args = dict(re.findall(r"^ARG ([A-Z0-9_]+)=(\S+)", joined, re.M))
        stages = []
        for l in lines:
            m = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", l, re.I)
            if m:
                image = re.sub(r"\$\{(\w+)\}", lambda mm: args.get(mm.group(1), mm.group(0)), m.group(1))
                stages.append([m.group(2), image, []])
            elif stages:
                stages[-1][2].append(l)
        for name, image, _ in stages:
            if "@sha256:" in image:
                continue
            tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
            if not tag or tag == "latest" or not re.search(r"\d", tag):
                fail(f"{rel(path)}: stage {name}: base image {image} is not pinned to a version tag")
        runs = [(n, l) for n, _, body in stages for l in body if re.match(r"RUN\b", l)]
        build_runs = [l for _, l in runs if re.search(r"(^|\s)tools/gpu_build\.sh build\b", l)]
        if not build_runs:
            fail(f"{rel(path)}: no RUN calls `tools/gpu_build.sh build`")
        if not any("tools/gpu_deps.sh" in l for _, l in runs):
            fail(f"{rel(path)}: no RUN calls tools/gpu_deps.sh")
        build_stages = [body for _, _, body in stages
                        if any(re.match(r"RUN\b", l) and l in build_runs for l in body)]
        backend = None
        if build_stages and accepted and default:
            backend = stage_backend(build_stages[0]) or default
            if backend not in accepted:
                fail(f"{rel(path)}: PROTEUS_GPU_BACKEND={backend}, which tools/gpu_build.sh does not "
                     f"accept ({', '.join(accepted)})")
            elif backend != DOCKER_BACKEND[df]:
                fail(f"{rel(path)}: the build runs tools/gpu_build.sh for backend {backend}, not "
                     f"{DOCKER_BACKEND[df]}")
        for _, l in runs:
            # A compiler or build tool in command position (package names after apt-get
            # install are fine).
            if re.search(r"(?:^RUN|&&|;|\|\||\bthen|\bdo)\s+(?:[A-Z_]+=\S*\s+)*"
                         r"(cmake|ninja|make|nvcc|hipcc|gcc|g\+\+|c\+\+|clang\+\+)(\s|$)", l):
                fail(f"{rel(path)}: a RUN line builds by itself instead of through "
                     f"tools/gpu_build.sh: {l[:100]}")
        final = stages[-1][2] if stages else []
        user = [l.split()[1] for l in final if l.startswith("USER ")]
        if not user or user[-1].split(":")[0] in ("0", "root"):
            fail(f"{rel(path)}: the runtime stage does not end as a non-root USER")
        elif not user[-1].split(":")[0].isdigit():
            fail(f"{rel(path)}: USER {user[-1]} is not numeric (runAsNonRoot cannot verify names)")
        hc = [l for l in final if l.startswith("HEALTHCHECK")]
        if not hc or "health" not in hc[-1]:
            fail(f"{rel(path)}: the runtime stage has no gRPC HEALTHCHECK")
        if len(failures) == before:
            ok(f"{rel(path)}: {len(stages)} stages, pinned bases, build via tools/gpu_build.sh "
               f"(backend {backend}), USER {user[-1] if user else '?'}, HEALTHCHECK")


# --------------------------------------------------------------------------------------------
# compose


def expand_defaults(value):
    """${VAR:-default} / ${VAR-default} -> default (what compose uses when VAR is unset)."""
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", value)


def cmd_compose(_args):
    path = os.path.join(DEPLOY, "compose.yaml")
    before = len(failures)
    cfg = load_all(path)[0]
    services = cfg.get("services", {})
    volumes = cfg.get("volumes", {}) or {}
    for name, s in services.items():
        for dep in (s.get("depends_on") or {}):
            if dep not in services:
                fail(f"{rel(path)}: {name} depends on unknown service {dep}")
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source")
            if src.startswith((".", "/")):
                if not os.path.exists(os.path.join(DEPLOY, src)):
                    fail(f"{rel(path)}: {name} mounts {src}, which does not exist")
            elif src not in volumes:
                fail(f"{rel(path)}: {name} mounts undeclared volume {src}")
        image = s.get("image", "")
        if image and "build" not in s and (":" not in image.split("/")[-1] or image.endswith(":latest")):
            fail(f"{rel(path)}: {name}: image {image} is not pinned to a version tag")
        b = s.get("build")
        if b:
            ctx = os.path.join(DEPLOY, b.get("context", "."))
            if not os.path.exists(os.path.join(ctx, expand_defaults(b.get("dockerfile", "Dockerfile")))):
                fail(f"{rel(path)}: {name}: dockerfile {b.get('dockerfile')} not found from {ctx}")
    if len(failures) == before:
        ok(f"{rel(path)}: {len(services)} services, references and mounted files resolve")


# --------------------------------------------------------------------------------------------
# Dashboard PromQL -> a rules file promtool can check


def cmd_dashboard_rules(args):
    """Writes every dashboard query as a recording rule to args[0] (Grafana's variables replaced
    by plain values), so that `promtool check rules` parses each PromQL expression."""
    path = os.path.join(DEPLOY, "grafana", "dashboards", "proteus.json")
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    rules = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"]
            expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
            expr = re.sub(r"\$\{?(instance|layer|job)\}?", ".*", expr)
            if "$" in expr:
                fail(f"{rel(path)}: panel {p['title']!r}: unknown variable in {t['expr']}")
            rules.append({"record": f"dashboard:panel{p['id']}_{t['refId']}", "expr": expr})
    for v in dash.get("templating", {}).get("list", []):
        m = re.match(r"label_values\((.*),\s*\w+\)$", v.get("definition", ""))
        if m:
            rules.append({"record": f"dashboard:var_{v['name']}", "expr": m.group(1)})
    with open(args[0], "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    ok(f"{len(rules)} dashboard queries written to {args[0]} for promtool")


COMMANDS = {
    "dashboard-rules": cmd_dashboard_rules,
    "gen-prometheusrule": cmd_gen_prometheusrule,
    "yaml": cmd_yaml,
    "prometheusrule": cmd_prometheusrule,
    "k8s": cmd_k8s,
    "envoy": cmd_envoy,
    "metrics": cmd_metrics,
    "flags": cmd_flags,
    "docker": cmd_docker,
    "compose": cmd_compose,
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    try:
        COMMANDS[argv[1]](argv[2:])
    except Exception as e:  # a crash is a failure with its reason, not a traceback to decode
        fail(f"{argv[1]}: {type(e).__name__}: {e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
