#!/usr/bin/env python3
"""Checks the tether Helm chart (run by .ci/run).

    python3 helm/check.py --tether target/debug/tether

1. Installs the pinned PyPI packages below into target/helm-check-venv (once) and re-runs
   itself there: helm-python-sdk (Helm v4's engine as a wheel) and kubernetes-validate.
2. For the default values, every file in helm/tether/examples/ and a few scenarios defined
   here: `helm lint` must report no error, the chart must render, and every rendered
   manifest must pass kubernetes-validate in strict mode against the oldest Kubernetes the
   chart supports (Chart.yaml kubeVersion) and the newest schema bundled.
   cert-manager Certificates, ServiceMonitors and PrometheusRules are CRDs with no bundled
   schema: they get a structural check here instead, and the summary says so. The Grafana
   dashboard must parse, and it and the alert rules may query only metrics that a real
   `tether serve` lists on its /metrics (observability_check.py).
3. For every pod of the rendered StatefulSet, the file it reads (its args with $(POD_NAME)
   expanded: /etc/tether/<pod>.toml from the ConfigMap) is checked with
   `tether serve --check-config` under the environment the pod gets (TETHER_LOG, and
   TETHER_ADMIN_KEYS / TETHER_TENANTS from the rendered Secret; an existing Secret the chart
   does not render is reported as not checked).
   Every [tls] file a pod's config names ({node_id} replaced by the pod's id) must be in a
   volume the container mounts, and a peer certificate issued by a chart Certificate must
   name the pod's node id (SAN URI urn:tether:node:<id>) and cover its advertised name.
4. Cluster invariants the node relies on: node ids (pod ordinal + 1) unique across the
   releases of one cluster, exactly one bootstrap seed (a pod whose advertised address is in
   `join`), the same `join` and timing profile everywhere, an odd number of voters.
5. Values that must be refused (schema or template `fail`) are refused.

Example files name their release and namespace in a first-line comment:
    # check: release=tether-eu namespace=tether-eu group=three-region
Files sharing a `group` are one cluster for the invariants of step 4.
Exits 1 on any failure, 2 when the packages cannot be installed.
"""

from __future__ import annotations

import argparse
import base64
import functools
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import observability_check  # noqa: E402

PINS = ["helm-python-sdk==0.2.2", "kubernetes-validate==1.37.0"]
ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "tether"
VENV = ROOT / "target" / "helm-check-venv"
CRD_KINDS = {
    ("cert-manager.io/v1", "Certificate"): ["secretName", "issuerRef"],
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ["selector", "endpoints"],
    ("monitoring.coreos.com/v1", "PrometheusRule"): ["groups"],
}


def bootstrap() -> None:
    """Re-runs this script inside a venv that has the pinned packages."""
    try:
        import helm_python  # noqa: F401
        import kubernetes_validate  # noqa: F401

        return
    except ImportError:
        pass
    if os.environ.get("TETHER_HELM_CHECK_VENV"):
        sys.exit("helm/check.py: the venv lacks the packages even after installing them")
    py = VENV / "bin" / "python"
    stamp = VENV / "pins.txt"
    if not (py.exists() and stamp.exists() and stamp.read_text() == "\n".join(PINS)):
        print(f"== installing {' '.join(PINS)} into {VENV}", flush=True)
        try:
            venv.EnvBuilder(clear=True, with_pip=True).create(VENV)
            subprocess.run(
                [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
                check=True,
            )
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"helm/check.py: cannot install {PINS}: {e}", file=sys.stderr)
            sys.exit(2)
        stamp.write_text("\n".join(PINS))
    env = dict(os.environ, TETHER_HELM_CHECK_VENV="1")
    os.execve(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]], env)


class Checker:
    def __init__(self, tether: Path, verbose: bool) -> None:
        import helm_python
        import kubernetes_validate.utils as kv
        import yaml

        self.helm = helm_python
        self.kv = kv
        self.yaml = yaml
        # Each validate() call re-reads the multi-megabyte schema files; cache them.
        kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)
        self.tether = tether
        self.verbose = verbose
        self.chart = helm_python.Chart.load(str(CHART))
        min_kube = re.search(r"(\d+\.\d+)", self.chart.metadata.get("kubeVersion", ""))
        self.kube_versions = sorted(
            {min_kube.group(1) if min_kube else kv.latest_version(), kv.latest_version()},
            key=lambda v: tuple(int(x) for x in v.split(".")),
        )
        self.failures: list[str] = []
        self.stats = {"renders": 0, "manifests": 0, "validations": 0, "crd": 0, "configs": 0,
                      "observability": 0}
        self.notes: list[str] = []
        self.exported: set[str] | None = None

    def fail(self, where: str, msg: str) -> None:
        self.failures.append(f"{where}: {msg}")
        print(f"  FAIL {where}: {msg}")

    # ---- one release ---------------------------------------------------------------------

    def release(self, label: str, values: dict, release: str, namespace: str) -> dict | None:
        """Lint, render, validate one release. Returns what the invariants need."""
        print(f"-- {label} (release {release}, namespace {namespace})")
        report = self.helm.lint(str(CHART), values, namespace=namespace)
        errors = list(report.get("errors") or [])
        errors += [m["error"] for m in report.get("messages", []) if m.get("severity") == 3]
        for e in dict.fromkeys(errors):
            self.fail(label, f"helm lint: {e}")
        try:
            rendered = self.chart.render(values, name=release, namespace=namespace, is_install=True)
        except self.helm.HelmError as e:
            self.fail(label, f"render: {e}")
            return None
        self.stats["renders"] += 1
        docs = []
        for path, text in sorted(rendered.items()):
            if path.endswith("NOTES.txt"):
                if "<no value>" in text:
                    self.fail(label, "NOTES.txt prints <no value>")
                continue
            for doc in self.yaml.safe_load_all(text):
                if doc:
                    docs.append((path, doc))
        kinds = []
        for path, doc in docs:
            self.stats["manifests"] += 1
            kinds.append(f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}")
            self.validate(label, path, doc)
        names = [k for k in kinds]
        if len(set(names)) != len(names):
            self.fail(label, f"duplicate resources: {sorted(names)}")
        print(f"  rendered {len(docs)}: {', '.join(kinds)}")
        self.check_observability(label, docs)
        return self.check_configs(label, docs, namespace)

    def check_observability(self, label: str, docs: list) -> None:
        """The dashboard parses, and it and the alert rules query only exported metrics."""
        if not any(d.get("kind") == "PrometheusRule" or "tether.json" in (d.get("data") or {})
                   for _, d in docs):
            return
        self.stats["observability"] += 1
        if self.exported is None:
            try:
                self.exported = observability_check.exported_series(self.tether)
            except RuntimeError as e:
                self.fail(label, f"reading the node's metrics: {e}")
                self.exported = set()
        for problem in observability_check.check(docs, self.exported):
            self.fail(label, problem)

    def validate(self, label: str, path: str, doc: dict) -> None:
        kind, api = doc.get("kind"), doc.get("apiVersion")
        name = f"{kind}/{doc.get('metadata', {}).get('name')}"
        if (api, kind) in CRD_KINDS:
            self.stats["crd"] += 1
            spec = doc.get("spec") or {}
            missing = [k for k in CRD_KINDS[(api, kind)] if k not in spec]
            if missing:
                self.fail(label, f"{name}: spec lacks {missing}")
            return
        for version in self.kube_versions:
            try:
                self.kv.validate(doc, version, strict=True)
                self.stats["validations"] += 1
            except self.kv.ValidationError as e:
                where = ".".join(str(p) for p in e.path)
                self.fail(label, f"{name} ({path}) against {version}: {where}: {e.message}")
            except (self.kv.SchemaNotFoundError, self.kv.InvalidSchemaError) as e:
                self.fail(label, f"{name}: {e.message}")

    def check_configs(self, label: str, docs: list, namespace: str) -> dict:
        by_kind: dict[str, dict[str, dict]] = {}
        for _, doc in docs:
            by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
        out = {"pods": [], "join": None, "timing": None, "voters": 0, "env": {}}
        cms = {n: cm for n, cm in by_kind.get("ConfigMap", {}).items()
               if "tether.json" not in (cm.get("data") or {})}
        if len(cms) != 1:
            self.fail(label, f"expected one ConfigMap, got {list(cms)}")
            return out
        data = next(iter(cms.values()))["data"]
        for key, text in data.items():
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                self.fail(label, f"{key} is not TOML: {e}")
                return out
        secrets = by_kind.get("Secret", {})
        certificates = by_kind.get("Certificate", {})
        with tempfile.TemporaryDirectory() as tmp:
            for sts_name, sts in by_kind.get("StatefulSet", {}).items():
                spec = sts["spec"]
                start = spec.get("ordinals", {}).get("start", 0)
                pods = [f"{sts_name}-{start + i}" for i in range(spec["replicas"])]
                container = spec["template"]["spec"]["containers"][0]
                for pod in pods:
                    env, skipped = pod_env(container.get("env", []), pod, namespace, secrets)
                    out["env"] = env
                    for s in skipped:
                        note = f"{label}: {s} not checked (Secret not rendered by the chart)"
                        if note not in self.notes:
                            self.notes.append(note)
                    args = [expand(a, env) for a in container.get("args", [])]
                    if args[:2] != ["serve", "--config"] or not args[2].startswith("/etc/tether/"):
                        self.fail(label, f"{pod}: unexpected args {args}")
                        continue
                    key = args[2].removeprefix("/etc/tether/")
                    if key not in data:
                        self.fail(label, f"{pod}: ConfigMap has no {key}")
                        continue
                    cfg = Path(tmp) / key
                    cfg.write_text(data[key])
                    self.run_check_config(f"{label} {pod}", cfg, env, tmp)
                    parsed = tomllib.loads(data[key])
                    self.check_tls_files(f"{label} {pod}", parsed, pod, spec["template"]["spec"],
                                         secrets, certificates)
                    cluster = parsed.get("cluster", {})
                    voter = cluster.get("voter", True)
                    out["voters"] += voter
                    out["join"] = out["join"] if out["join"] is not None else cluster.get("join", [])
                    if cluster.get("join", []) != out["join"]:
                        self.fail(label, f"{pod}: join differs from the other pods'")
                    out["timing"] = cluster.get("timing", "lan")
                    out["pods"].append(
                        {"pod": pod, "id": id_from_hostname(pod), "voter": voter,
                         "advertise": cluster.get("advertise")}
                    )
            extra = set(data) - {p["pod"] + ".toml" for p in out["pods"]}
            if extra:
                self.fail(label, f"ConfigMap files no pod reads: {sorted(extra)}")
        return out

    def check_tls_files(self, where: str, cfg: dict, pod: str, pod_spec: dict, secrets: dict,
                        certificates: dict) -> None:
        """Every [tls] file the config names is mounted; a chart-issued peer certificate names
        this pod's node id and covers its advertised host."""
        tls = cfg.get("tls", {})
        node_id = id_from_hostname(pod)
        container = pod_spec["containers"][0]
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        for key in ("client_cert", "client_key", "admin_cert", "admin_key", "admin_client_ca",
                    "peer_ca", "peer_cert", "peer_key"):
            if key not in tls:
                continue
            path = tls[key]
            if key in ("peer_cert", "peer_key"):
                path = path.replace("{node_id}", str(node_id))
            src = mounted_source(path, container.get("volumeMounts", []), volumes)
            if src is None:
                self.fail(where, f"[tls] {key} = {path}: no mounted volume provides it")
                continue
            kind, name, item = src
            secret = secrets.get(name) if kind == "secret" else None
            if secret is not None and item not in {**secret.get("data", {}),
                                                   **secret.get("stringData", {})}:
                self.fail(where, f"[tls] {key}: Secret {name} has no key {item}")
            cert = next((c for c in certificates.values()
                         if kind == "secret" and c["spec"].get("secretName") == name), None)
            if key != "peer_cert" or cert is None:
                continue
            uris = cert["spec"].get("uris", [])
            want = f"urn:tether:node:{node_id}"
            if want not in uris and (uris or not tls.get("peer_allow_missing_node_id")):
                self.fail(where, f"peer certificate {cert['metadata']['name']} names {uris}, "
                                 f"not {want}")
            host = cfg.get("cluster", {}).get("advertise", "").rsplit(":", 1)[0]
            if host and not any(dns_matches(n, host) for n in cert["spec"].get("dnsNames", [])):
                self.fail(where, f"peer certificate {cert['metadata']['name']} does not cover "
                                 f"the advertised name {host}")

    def run_check_config(self, where: str, cfg: Path, env: dict, cwd: str) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        clean.update(env)
        r = subprocess.run(
            [str(self.tether), "serve", "--check-config", str(cfg)],
            env=clean, cwd=cwd, capture_output=True, text=True, timeout=60,
        )
        self.stats["configs"] += 1
        if r.returncode != 0 or "config ok" not in r.stdout:
            self.fail(where, f"tether serve --check-config exit {r.returncode}: "
                             f"{(r.stderr or r.stdout).strip()}")
        elif self.verbose:
            print(f"  {where}: {r.stdout.strip()}")

    # ---- one cluster (a release, or a group of releases) ---------------------------------

    def cluster(self, label: str, parts: list[dict], external_seed: bool = False) -> None:
        pods = [p for part in parts for p in part["pods"]]
        ids = [p["id"] for p in pods]
        if None in ids or len(set(ids)) != len(ids):
            self.fail(label, f"node ids not unique: {sorted((p['pod'], p['id']) for p in pods)}")
        joins = {tuple(p["join"]) for p in parts}
        if len(joins) != 1:
            self.fail(label, f"releases disagree on cluster.join: {joins}")
        timings = {p["timing"] for p in parts}
        if len(timings) != 1:
            self.fail(label, f"releases disagree on cluster.timing: {timings}")
        join = set(next(iter(joins)))
        seeds = [p["pod"] for p in pods if p["advertise"] in join]
        advertised = [p["advertise"] for p in pods]
        if len(set(advertised)) != len(advertised):
            self.fail(label, "two pods advertise the same peer address")
        if join and len(seeds) != (0 if external_seed else 1):
            self.fail(label, f"bootstrap seeds among the pods: {seeds} (join {sorted(join)})")
        for s in seeds:
            if not next(p for p in pods if p["pod"] == s)["voter"]:
                self.fail(label, f"seed {s} is not a voter")
        voters = sum(p["voters"] for p in parts)
        if not external_seed and voters % 2 == 0:
            self.fail(label, f"{voters} voters: an even count adds no fault tolerance")
        summary = ", ".join(f"{p['pod']}=n{p['id']}{'*' if p['voter'] else ''}" for p in pods)
        print(f"  cluster {label}: {summary} (*=voter), seed {seeds or sorted(join) or 'none'}")

    def must_fail(self, label: str, values: dict, expect: str) -> None:
        try:
            self.chart.render(values, name="tether", namespace="default", is_install=True)
        except self.helm.HelmError as e:
            if expect.lower() not in str(e).lower():
                self.fail(f"refuse {label}", f"refused, but not for {expect!r}: {e}")
            else:
                print(f"-- refused as expected: {label}")
            return
        self.fail(f"refuse {label}", "the chart rendered values it must refuse")


def pod_env(env_list: list, pod: str, namespace: str, secrets: dict) -> tuple[dict, list]:
    """The container env of one pod, as the kubelet would build it (the parts we render)."""
    env: dict[str, str] = {}
    skipped = []
    for e in env_list:
        name = e["name"]
        if "value" in e:
            env[name] = expand(e["value"], env)
            continue
        src = e.get("valueFrom", {})
        if "fieldRef" in src:
            field = src["fieldRef"]["fieldPath"]
            env[name] = {"metadata.name": pod, "metadata.namespace": namespace}[field]
        elif "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            secret = secrets.get(ref["name"])
            if secret is None:
                skipped.append(f"{name} (Secret {ref['name']})")
                continue
            if ref["key"] in secret.get("stringData", {}):
                env[name] = secret["stringData"][ref["key"]]
            elif ref["key"] in secret.get("data", {}):
                env[name] = base64.b64decode(secret["data"][ref["key"]]).decode()
            elif not ref.get("optional"):
                raise KeyError(f"{ref['name']} has no key {ref['key']}")
    return env, skipped


def mounted_source(path: str, mounts: list, volumes: dict) -> tuple[str, str, str] | None:
    """(kind, name, key) of the Secret or ConfigMap item the container sees at `path`."""
    mount = max((m for m in mounts if path.startswith(m["mountPath"].rstrip("/") + "/")),
                key=lambda m: len(m["mountPath"]), default=None)
    if mount is None or mount["name"] not in volumes:
        return None
    rel = path[len(mount["mountPath"].rstrip("/")) + 1:]
    vol = volumes[mount["name"]]
    sources = [s for s in vol.get("projected", {}).get("sources", [])]
    if "secret" in vol:
        sources.append({"secret": {**vol["secret"], "name": vol["secret"]["secretName"]}})
    if "configMap" in vol:
        sources.append({"configMap": vol["configMap"]})
    for source in sources:
        for kind in ("secret", "configMap"):
            if kind not in source:
                continue
            obj = source[kind]
            items = obj.get("items")
            if items is None and "/" not in rel:
                return kind, obj["name"], rel
            for item in items or []:
                if item["path"] == rel:
                    return kind, obj["name"], item["key"]
    return None


def dns_matches(pattern: str, host: str) -> bool:
    """A certificate DNS name (a leading `*.` matches exactly one label) against a host."""
    if pattern.startswith("*."):
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def expand(text: str, env: dict) -> str:
    """The kubelet's $(VAR) expansion in env values and args."""
    return re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def id_from_hostname(host: str) -> int | None:
    """node/src/config/sections.rs `id_from_hostname`: trailing -<ordinal>, plus one."""
    m = re.fullmatch(r".*-(\d+)", host.split(".")[0])
    return int(m.group(1)) + 1 if m else None


def example_header(path: Path) -> dict:
    first = path.read_text().splitlines()[0]
    m = re.match(r"#\s*check:\s*(.*)", first)
    if not m:
        raise SystemExit(f"{path}: first line must be `# check: release=… namespace=…`")
    return dict(kv.split("=", 1) for kv in m.group(1).split())


def dev_pem(tether: Path, tmp: str, sans: list[str]) -> dict:
    """A dev CA and node certificate from `tether certs`, as inline PEM values."""
    san_args = [a for s in sans for a in ("--san", s)]
    subprocess.run([str(tether), "certs", "--out", tmp, "--node", "peer", *san_args],
                   check=True, capture_output=True)
    read = lambda f: (Path(tmp) / f).read_text()  # noqa: E731
    return {"ca": read("ca.pem"), "cert": read("peer.pem"), "key": read("peer-key.pem")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tether", required=True, type=Path, help="the tether binary")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    bootstrap()
    tether = args.tether.resolve()
    if not os.access(tether, os.X_OK):
        print(f"helm/check.py: {tether} is not an executable tether binary", file=sys.stderr)
        return 1
    began = time.monotonic()
    c = Checker(tether, args.verbose)
    print(f"== helm {c.helm.helm_sdk_version()} via helm-python-sdk {c.helm.__version__}; "
          f"kubernetes-validate --strict against {', '.join(c.kube_versions)}")

    # Defaults.
    part = c.release("default values", {}, "tether", "default")
    if part:
        c.cluster("default values", [part])

    # Example files; files sharing a group form one cluster.
    groups: dict[str, list[dict]] = {}
    for path in sorted((CHART / "examples").glob("*.yaml")):
        head = example_header(path)
        values = c.helm.values_from_yaml(path.read_text())
        part = c.release(f"examples/{path.name}", values, head["release"], head["namespace"])
        if part:
            groups.setdefault(head.get("group", path.name), []).append(part)
    for name, parts in groups.items():
        c.cluster(name, parts)

    # Scenarios the examples do not cover.
    with tempfile.TemporaryDirectory() as tmp:
        peer = dev_pem(tether, tmp, ["*.inline-peers.ns.svc.cluster.local"])
    secret = "s" * 40
    inline = {
        "replicas": 4, "voters": 3, "podAntiAffinity": "hard",
        "image": {"repository": "r.example/tether",
                  "digest": "sha256:" + "ab" * 32},
        # One shared dev certificate without node ids: only with allowMissingNodeId.
        "tls": {"peer": {**peer, "allowMissingNodeId": True},
                "client": {"enabled": True, "cert": peer["cert"], "key": peer["key"]},
                "admin": {"enabled": True, "cert": peer["cert"], "key": peer["key"],
                          "clientCA": {"pem": peer["ca"]}}},
        "adminKeys": [{"kid": "ops", "alg": "HS256", "secret": secret}],
        "tenants": [{"id": "t1", "issuer": "https://idp.example/", "audiences": ["tether"],
                     "keys": [{"kid": "k1", "alg": "HS256", "secret": secret}],
                     "limits": {"messages_per_conn_per_sec": 20}}],
        "cluster": {"isolationLeaseMs": 2000, "isolationGraceMs": 2000},
        "config": {
            "auth": {"leeway_secs": 10, "tenant_claim": "tenant", "refresh_window_secs": 30,
                     "allow_query_token": True, "max_token_bytes": 4096},
            "limits": {"auth_timeout_secs": 5, "idle_timeout_secs": 90,
                       "heartbeat_interval_secs": 30, "max_frame_bytes": 131072,
                       "max_connections": 20000, "max_connections_per_ip": 500,
                       "max_connections_per_user": 20, "handshakes_per_ip_per_sec": 40,
                       "messages_per_conn_per_sec": 50, "max_protocol_errors": 3,
                       "outbound_queue": 512, "upgrade_timeout_secs": 10,
                       "max_subscriptions_per_conn": 200, "rate_limit_strikes": 3},
            "session": {"resume_window_secs": 300, "expire_interval_secs": 30},
            "raft": {"snapshot_every": 10000},
        },
        "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_HEADERS", "value": "x-api-key=k"}],
        "otel": {"endpoint": "http://otel:4317", "protocol": "grpc",
                 "sampler": "parentbased_traceidratio", "samplerArg": "0.25"},
        "networkPolicy": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True, "tls": {
                        "caSecret": {"name": "inline-tether-admin-client-ca"},
                        "clientCertSecret": "prometheus-tether-client"}},
                    "dashboard": {"enabled": True},
                    "prometheusRule": {"enabled": True, "revocationP99Seconds": 0.25}},
        "drain": {"preStopSleepSeconds": 0},
    }
    part = c.release("scenario inline-secrets", inline, "inline", "ns")
    if part:
        c.cluster("scenario inline-secrets", [part])
        want = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
        got = {k: part["env"].get(k) for k in want}
        if got != want:
            c.fail("scenario inline-secrets", f"otel.* rendered as {got}, want {want}")
        if c.stats["observability"] == 0:
            c.fail("scenario inline-secrets", "the dashboard and alert rules were not rendered")
    single = {"replicas": 1, "voters": 1, "tls": {"peer": {"enabled": False}}}
    part = c.release("scenario single-node", single, "solo", "default")
    if part:
        c.cluster("scenario single-node", [part])
        if part["join"]:
            c.fail("scenario single-node", f"a lone node should not join: {part['join']}")
    per_node = {"replicas": 3, "ordinalStart": 10,
                "tls": {"peer": {"existingSecretPrefix": "pki-node"}}}
    part = c.release("scenario per-node-secrets", per_node, "pn", "default")
    if part:
        c.cluster("scenario per-node-secrets", [part])
    learners = {"replicas": 2, "voters": 0, "ordinalStart": 300,
                "cluster": {"insecurePeer": True,
                            "seeds": ["tether-0.tether-peers.default.svc.cluster.local:7072"]},
                "tls": {"peer": {"enabled": False}}}
    part = c.release("scenario learners-only", learners, "edge", "default")
    if part:
        c.cluster("scenario learners-only", [part], external_seed=True)

    # Values the chart must refuse.
    c.must_fail("voters > replicas", {"replicas": 2, "voters": 3}, "cannot exceed replicas")
    c.must_fail("two seeds", {"cluster": {"seeds": ["a:7072", "b:7072"]}}, "maxItems")
    c.must_fail("clustered without peer TLS", {"tls": {"peer": {"enabled": False}}},
                "needs tls.peer.enabled")
    c.must_fail("unknown node config key", {"config": {"limits": {"max_frames": 1}}},
                "additional properties")
    c.must_fail("learners without seeds", {"voters": 0}, "cluster.seeds is required")
    c.must_fail("TETHER_ env in extraEnv", {"extraEnv": [{"name": "TETHER_X", "value": "1"}]},
                "extraEnv")
    c.must_fail("client TLS without a source", {"tls": {"client": {"enabled": True}}},
                "tls.client.enabled needs")
    c.must_fail("one shared peer certificate without allowMissingNodeId",
                {"tls": {"peer": {"existingSecret": "shared-peer"}}}, "ONE certificate")
    c.must_fail("admin TLS without a source", {"tls": {"admin": {"enabled": True}}},
                "tls.admin.enabled needs")
    c.must_fail("admin client CA without admin TLS",
                {"tls": {"admin": {"clientCA": {"existingSecret": "ca"}}}},
                "needs tls.admin.enabled")
    c.must_fail("ServiceMonitor without a client certificate for the admin client CA",
                {"tls": {"admin": {"enabled": True, "existingSecret": "adm",
                                   "clientCA": {"existingSecret": "ca"}}},
                 "metrics": {"serviceMonitor": {"enabled": True}}},
                "clientCertSecret is required")

    s = c.stats
    print(f"== {s['renders']} renders, {s['manifests']} manifests: {s['validations']} strict "
          f"kubernetes-validate passes, {s['crd']} CRD objects (Certificate, ServiceMonitor, "
          f"PrometheusRule) "
          f"checked structurally only; {s['configs']} tether --check-config runs; "
          f"{time.monotonic() - began:.1f}s")
    for n in c.notes:
        print(f"   note: {n}")
    if c.failures:
        print(f"== FAILED: {len(c.failures)} problem(s)")
        for f in c.failures:
            print(f"   {f}")
        return 1
    print("== chart checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
