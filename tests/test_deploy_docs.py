"""docs/deploy.md and docker/k8s/, checked offline.

- Every manifest in docker/k8s/ (and every complete Kubernetes object in a YAML block of the
  document) validates against the Kubernetes schemas that kubernetes-validate ships, in strict
  mode (unknown fields are errors).
- The manifests agree with each other and with docstream: every ConfigMap/Secret key they
  use exists, every `$(VAR)` in a command is defined, probes and Services name real ports,
  selectors select a Deployment, the containers' `docstream …` command lines parse with
  docstream's own parser, and the streaming Deployment keeps the rules the document states
  (one replica, Recreate, hardening, a grace period that covers the drain).
- The document's references hold: every `docstream` command in its shell blocks parses and
  its flags appear in `docstream <cmd> -h`; every Beam option after `--` is one Beam 2.77
  knows (or one the Flink job server describes); every "Beam receives" block is what
  pipelines/batch.py builds from the command above it; every repository path exists; the
  Beam and Flink versions are the installed ones; the measured figures are in their sources.
"""

from __future__ import annotations
import __future__

import argparse
import ast
import contextlib
import io
import logging
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "deploy.md"
K8S = REPO / "docker" / "k8s"
#: the newest Kubernetes schema set kubernetes-validate 1.37 ships
K8S_VERSION = "1.37"
#: options the Python SDK learns from the Flink job server at submission
#: (apache_beam/runners/portability/portable_runner.py, get_pipeline_options)
JOB_SERVER_OPTIONS = frozenset({"--checkpointing_interval"})
#: stream.py `_drain` waits 30 s for the cancel, the explanation branch up to 10 s at a stop,
#: prism.stop_prism 5 s: what the grace period must cover beyond the drain timeout
AFTER_DRAIN_S = 30 + 10 + 5
#: the streaming job's measured peak RSS with Prism (bench/results/cpu-full-2026-11-29.txt)
STREAM_PEAK_RSS_MB = 2506.8
#: (figure as the document prints it, the file it comes from)
FIGURES = [
    ("211.1", "bench/results/cpu-full-2026-11-29.txt"),
    ("317.0", "bench/results/cpu-quick-2026-12-03.txt"),
    ("182.0", "bench/results/cpu-full-2026-11-29.txt"),
    ("190.3", "bench/results/cpu-full-2026-11-29.txt"),
    ("192.8", "bench/results/cpu-full-2026-11-29.txt"),
    ("200.5", "bench/results/cpu-full-2026-11-29.txt"),
    ("289.5", "bench/results/cpu-full-2026-11-29.txt"),
    ("94.6%", "bench/results/cpu-full-2026-11-29.txt"),
    ("4,950.3", "bench/results/cpu-full-2026-11-29.txt"),
    ("3,316.7", "bench/results/cpu-full-2026-11-29.txt"),
    ("4,468.0", "bench/results/cpu-full-2026-11-29.txt"),
    ("105.5", "bench/results/cpu-full-2026-11-29.txt"),
    ("2,421.8", "bench/results/cpu-full-2026-11-29.txt"),
    ("2,506.8", "bench/results/cpu-full-2026-11-29.txt"),
    ("1,759.1", "bench/results/cpu-full-2026-11-29.txt"),
    ("p50 2.1 s, p99 5.5 s", "README.md"),
    ("p50 0.19 s", "README.md"),
    ("2.13 GB", "README.md"),
    ("112.3 ms", "README.md"),
]
PATH_RE = re.compile(
    r"(?<![\w./:@-])((?:docstream|pipelines|streaming|store|model|privacy|web|docker|scripts|"
    r"bench|tests|docs|preprocess|schemas|training)/(?:[\w./-]*[\w/])?(?:\*\.\w+)?"
    r"|README\.md|ARCHITECTURE\.md|pyproject\.toml|requirements\.lock)")
FENCE_RE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
SHELL = {"sh", "bash", "shell", "console", ""}


# ------------------------------------------------------------------------------- helpers


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def blocks() -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block of the document, in order."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE_RE.finditer(doc_text())]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if obj:
                out.append((path.name, obj))
    return out


def doc_objects() -> list[dict[str, Any]]:
    """Complete Kubernetes objects in the document's YAML blocks."""
    out = []
    for info, body in blocks():
        if info in ("yaml", "yml"):
            out += [o for o in yaml.safe_load_all(body)
                    if isinstance(o, dict) and "apiVersion" in o and "kind" in o]
    return out


def shell_commands(body: str) -> Iterator[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped, split at
    `|`, `&&`, `||` and `;` (written apart), and `VAR=value` prefixes left out."""
    for line in body.replace("\\\n", " ").splitlines():
        command: list[str] = []
        for token in [*shlex.split(line, comments=True), ";"]:
            if token not in ("|", "&&", "||", ";"):
                command.append(token)
                continue
            while command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command[0]):
                command = command[1:]
            if command:
                yield command
            command = []


def docstream_commands() -> list[tuple[int, list[str]]]:
    """(block index, arguments after `docstream`) of every docstream command in shell blocks."""
    out = []
    for i, (info, body) in enumerate(blocks()):
        if info in SHELL:
            out += [(i, tokens[1:]) for tokens in shell_commands(body)
                    if Path(tokens[0]).name == "docstream"]
    return out


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    from docstream.cli import build_parser

    return build_parser()


def subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """docstream/cli.py's own split at `--`, then its parser; a usage error fails the test
    with argparse's message."""
    cut = argv.index("--") if "--" in argv else len(argv)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ns = parser.parse_args(argv[:cut])
        except SystemExit:
            pytest.fail(f"`docstream {shlex.join(argv)}` does not parse: {err.getvalue()}")
    ns.beam_args = argv[cut + 1:]
    return ns


def check_flags_in_help(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Each subcommand (nested ones too) and each flag before `--` appears in the help of the
    (sub)command it belongs to, as `docstream <cmd> -h` prints it."""
    cut = argv.index("--") if "--" in argv else len(argv)
    current, words = parser, ["docstream"]
    for token in argv[:cut]:
        if token.startswith("-"):
            flag = token.split("=", 1)[0]
            assert flag in current.format_help(), \
                f"{flag} is not in `{' '.join(words)} -h`"
            continue
        subs = subparsers(current)
        if token in subs:
            current, words = subs[token], [*words, token]


def env_values(container: dict[str, Any], config: dict[str, dict[str, str]]) -> dict[str, str]:
    """What the container's environment would hold (ConfigMap values as written, Secret
    values as their placeholder, field references as a sample)."""
    values: dict[str, str] = {}
    for e in container.get("env", []):
        src = e.get("valueFrom", {})
        if "value" in e:
            values[e["name"]] = e["value"]
        elif "configMapKeyRef" in src or "secretKeyRef" in src:
            ref = src.get("configMapKeyRef") or src["secretKeyRef"]
            values[e["name"]] = config[ref["name"]][ref["key"]]
        elif "fieldRef" in src:
            values[e["name"]] = "pod-0"
    return values


def expand(arg: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: values[m.group(1)], arg)


def configs() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for _, obj in manifests():
        if obj["kind"] == "ConfigMap":
            out[obj["metadata"]["name"]] = dict(obj.get("data", {}))
        elif obj["kind"] == "Secret":
            out[obj["metadata"]["name"]] = {**obj.get("data", {}), **obj.get("stringData", {})}
    return out


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for _, obj in manifests():
        if obj["kind"] in ("Deployment", "Job"):
            out.append((obj["metadata"]["name"], obj["spec"]["template"]["spec"]))
    return out


def deployment(name: str) -> dict[str, Any]:
    return next(o for _, o in manifests() if o["kind"] == "Deployment"
                and o["metadata"]["name"] == name)


def functions_from(path: Path, names: set[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """Compile the named top-level functions (and dataclass field defaults, via `defaults_of`)
    of a module from its source, into `namespace`: the real code of pipelines/batch.py and
    pipelines/stream_options.py, without importing them (which would import torch and the
    model stack, seconds this test must not cost)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert {n.name for n in found} == names, f"{path.name} no longer defines {names}"
    code = compile(ast.Module(body=found, type_ignores=[]), str(path), "exec",
                   flags=__future__.annotations.compiler_flag, dont_inherit=True)
    exec(code, namespace)
    return namespace


def defaults_of(path: Path, cls: str) -> dict[str, Any]:
    """The literal field defaults of a dataclass, read from its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return {f.target.id: ast.literal_eval(f.value) for f in node.body
            if isinstance(f, ast.AnnAssign) and isinstance(f.target, ast.Name) and f.value
            and isinstance(f.value, ast.Constant)}


def mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", quantity)
    assert m and m.group(2) in units, quantity
    return float(m.group(1)) * units[m.group(2)]


# ---------------------------------------------------------------------- the manifests


MANIFESTS = manifests()


def test_the_manifests_are_all_there() -> None:
    kinds = sorted(o["kind"] for _, o in MANIFESTS)
    for kind in ("ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"):
        assert kind in kinds, f"docker/k8s/ has no {kind}"
    assert kinds.count("Deployment") >= 2  # the streaming job and serve


@pytest.mark.parametrize("obj", [o for _, o in MANIFESTS],
                         ids=[f"{f}:{o['kind']}/{o['metadata']['name']}" for f, o in MANIFESTS])
def test_manifest_validates_against_the_kubernetes_schema(obj: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{'.'.join(map(str, e.path))}: {e.message}")


def test_the_documents_kubernetes_objects_validate() -> None:
    objs = doc_objects()
    assert objs, "docs/deploy.md has no Kubernetes YAML block (the Flink job server and sidecar)"
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"docs/deploy.md {obj['kind']}/{obj['metadata']['name']}: "
                        f"{'.'.join(map(str, e.path))}: {e.message}")


def test_references_between_manifests_resolve() -> None:
    config = configs()
    for name, spec in pod_specs():
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{name}/{c['name']}"
            for e in c.get("env", []):
                ref = e.get("valueFrom", {})
                ref = ref.get("configMapKeyRef") or ref.get("secretKeyRef")
                if ref:
                    assert ref["key"] in config.get(ref["name"], {}), \
                        f"{where}: {e['name']} names {ref['name']}/{ref['key']}, which no manifest has"
            defined = {e["name"] for e in c.get("env", [])}
            for arg in [*c.get("command", []), *c.get("args", [])]:
                for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
                    assert var in defined, f"{where}: $({var}) is not in its env (it would stay literal)"
            ports = {p["name"] for p in c.get("ports", []) if "name" in p}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                handler = c.get(probe, {})
                port = (handler.get("httpGet") or handler.get("tcpSocket") or {}).get("port")
                if isinstance(port, str):
                    assert port in ports, f"{where}: {probe} names port {port!r}"
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in spec.get("volumes", [])}, where
    templates = {o["metadata"]["name"]: o["spec"]["template"] for _, o in MANIFESTS
                 if o["kind"] == "Deployment"}
    for _, obj in MANIFESTS:
        kind = obj["kind"]
        if kind == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
        if kind in ("Service", "PodDisruptionBudget"):
            selector = (obj["spec"]["selector"] if kind == "Service"
                        else obj["spec"]["selector"]["matchLabels"])
            chosen = [n for n, t in templates.items()
                      if selector.items() <= t["metadata"]["labels"].items()]
            assert chosen, f"{kind}/{obj['metadata']['name']} selects no Deployment"
            if kind == "Service":
                names = {p.get("name") for n in chosen for c in templates[n]["spec"]["containers"]
                         for p in c.get("ports", [])}
                for port in obj["spec"]["ports"]:
                    assert port["targetPort"] in names, port


def test_containers_run_docstream_command_lines_that_parse(parser: argparse.ArgumentParser) -> None:
    from docstream.streaming.url import parse_kafka_url

    config = configs()
    seen = set()
    for _, spec in pod_specs():
        for c in spec["containers"]:
            if c.get("command") != ["docstream"]:
                continue
            values = env_values(c, config)
            argv = [expand(a, values) for a in c.get("args", [])]
            check_flags_in_help(parser, argv)
            ns = parse(parser, argv)
            seen.add(ns.command)
            for source in getattr(ns, "source", None) or []:
                if source.startswith("kafka://"):
                    parse_kafka_url(source)  # the assembled URL is a valid one
    assert {"run", "serve"} <= seen, seen


def test_the_streaming_deployment_keeps_the_documented_rules() -> None:
    drain_timeout_s = defaults_of(REPO / "pipelines" / "stream_options.py",
                                  "StreamOptions")["drain_timeout_s"]
    raw = (K8S / "stream-deployment.yaml").read_text(encoding="utf-8")
    dep = deployment("docstream-stream-news")
    assert dep["spec"]["replicas"] >= 2, "N workers of ONE consumer group (docs/deploy.md)"
    assert "N workers of ONE consumer group" in raw
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0  # no extra pod per roll
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["terminationGracePeriodSeconds"] >= drain_timeout_s + AFTER_DRAIN_S
    (c,) = pod["containers"]
    assert c["args"][0] == "run" and "--metrics-port" in c["args"]
    # each pod is its own worker of the group: its run id, runs row and audit chain
    assert c["args"][c["args"].index("--worker") + 1] == "$(POD_NAME)"
    metrics_port = c["args"][c["args"].index("--metrics-port") + 1]
    assert [p["containerPort"] for p in c["ports"]] == [int(metrics_port)]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    limits, requests = c["resources"]["limits"], c["resources"]["requests"]
    assert mib(limits["memory"]) * 2**20 / 1e6 >= 1.25 * STREAM_PEAK_RSS_MB
    assert mib(requests["memory"]) * 2**20 / 1e6 >= STREAM_PEAK_RSS_MB
    env = {e["name"]: e for e in c["env"]}
    assert env["DOCSTREAM_TORCH_THREADS"]["value"] == str(limits["cpu"])
    assert env["DOCSTREAM_DB"]["valueFrom"]["secretKeyRef"]["name"] == "docstream-stream"
    assert "DOCSTREAM_AUDIT_KEY" in env
    # the Prism copy on a writable volume (a read-only root makes Beam's chmod fail)
    assert env["DOCSTREAM_PRISM"]["value"].startswith("/prism/")
    assert not any(m.get("readOnly") for m in c["volumeMounts"] if m["mountPath"] == "/prism")


@pytest.mark.parametrize("name", ["docstream-stream-news", "docstream-serve"])
def test_pods_are_hardened(name: str) -> None:
    pod = deployment(name)["spec"]["template"]["spec"]
    tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, c["name"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert "limits" in c["resources"] and "requests" in c["resources"], c["name"]
    for c in pod["containers"]:
        assert any(m["mountPath"] == "/tmp" and m["name"] in tmp for m in c["volumeMounts"])


# ------------------------------------------------------------------------ the document


def test_every_docstream_command_of_the_document_exists(parser: argparse.ArgumentParser) -> None:
    commands = docstream_commands()
    assert len(commands) >= 5, commands
    for _, argv in commands:
        check_flags_in_help(parser, argv)
        parse(parser, argv)


def test_every_beam_option_of_the_document_is_known_to_beam(
        parser: argparse.ArgumentParser, caplog: pytest.LogCaptureFixture) -> None:
    from apache_beam.options.pipeline_options import PipelineOptions

    checked = 0
    for _, argv in docstream_commands():
        beam_args = parse(parser, argv).beam_args
        if not beam_args:
            continue
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="apache_beam.options.pipeline_options"):
            PipelineOptions(beam_args).get_all_options()
        unknown = [a for r in caplog.records if r.getMessage().startswith("Discarding")
                   for a in r.args[0]]
        unknown = [a for a in unknown if a.split("=", 1)[0] not in JOB_SERVER_OPTIONS]
        assert not unknown, f"Beam {_beam_version()} does not know {unknown}"
        checked += 1
    assert checked >= 4  # Flink streaming and batch, Dataflow batch and streaming


def test_beam_receives_what_the_document_says(parser: argparse.ArgumentParser) -> None:
    """Each `docstream run … -- …` block is followed by a beam-argv block holding exactly the
    argument list that pipelines/batch.py (`beam_options`) hands to PipelineOptions, through
    pipelines/stream_options.py (`stream_pipeline_options`) for kafka:// sources."""
    from collections.abc import Sequence

    from docstream.pipelines.options import RunSettings

    def no_prism(explicit: str | None = None) -> str:
        raise AssertionError("the document's commands do not run on Prism")

    ns_code: dict[str, Any] = {"PipelineOptions": list, "RunSettings": RunSettings,
                               "Sequence": Sequence, "find_prism": no_prism}
    functions_from(REPO / "pipelines" / "batch.py", {"beam_options"}, ns_code)
    functions_from(REPO / "pipelines" / "stream_options.py",
                   {"_has_arg", "stream_pipeline_options"}, ns_code)
    stream_options = argparse.Namespace(prism_location=None)
    all_blocks = blocks()
    checked = 0
    for i, argv in docstream_commands():
        ns = parse(parser, argv)
        if ns.command != "run" or not ns.beam_args:
            continue
        info, body = all_blocks[i + 1]
        assert info == "beam-argv", f"no beam-argv block after `docstream {shlex.join(argv)}`"
        sources = ns.source or ["posts.jsonl"]
        kafka = any(s.startswith("kafka://") for s in sources)
        # docstream/commands/run.py: the runner defaults to Prism for Kafka, else DirectRunner
        settings = RunSettings(sources=sources, sink=ns.sink or "sqlite://", model_dir="bundled",
                               runner=ns.runner or ("PrismRunner" if kafka else "DirectRunner"),
                               beam_args=ns.beam_args)
        flags = (ns_code["stream_pipeline_options"](settings, stream_options) if kafka
                 else ns_code["beam_options"](settings))
        assert body.split() == flags
        checked += 1
    assert checked >= 4


def cited_text() -> str:
    """Where the document cites paths: inline code, link targets and code blocks (plain prose
    has "docs/s", which is a unit)."""
    text = doc_text()
    spans = re.findall(r"`([^`\n]+)`", FENCE_RE.sub("", text))
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    return "\n".join([*spans, *links, *(body for _, body in blocks())])


def test_every_repository_path_the_document_cites_exists() -> None:
    paths = set(PATH_RE.findall(cited_text()))
    assert len(paths) >= 20, paths
    missing = [p for p in sorted(paths)
               if not (list(REPO.glob(p)) if "*" in p else (REPO / p).exists())]
    assert not missing, f"docs/deploy.md cites paths that do not exist: {missing}"


def _beam_version() -> str:
    from importlib.metadata import version

    return version("apache-beam")


def test_versions_in_the_document_are_the_installed_ones() -> None:
    from apache_beam.options.pipeline_options import FlinkRunnerOptions

    text, beam = doc_text(), _beam_version()
    tags = re.findall(r"apache/beam_[\w.]+:(\d+\.\d+\.\d+)", text)
    tags += re.findall(r"apache-beam(?:\[\w+\])?==(\d+\.\d+\.\d+)", text)
    assert tags and set(tags) == {beam}, (tags, beam)
    flink = set(re.findall(r"apache/beam_flink(\d+\.\d+)_job_server", text))
    assert flink and flink <= set(FlinkRunnerOptions.PUBLISHED_FLINK_VERSIONS), flink
    assert flink == set(re.findall(r"image: flink:(\d+\.\d+)", text)), "job server and cluster differ"
    # the SDK image's Python is the one the lock is resolved for (scripts/lock)
    lock_python = re.search(r"--python-version (\d+\.\d+)",
                            (REPO / "scripts" / "lock").read_text(encoding="utf-8")).group(1)
    assert set(re.findall(r"apache/beam_python(\d+\.\d+)_sdk", text)) == {lock_python}


@pytest.mark.parametrize(("figure", "source"), FIGURES)
def test_measured_figures_are_in_their_sources(figure: str, source: str) -> None:
    assert figure in doc_text(), f"docs/deploy.md no longer cites {figure}"
    assert figure in (REPO / source).read_text(encoding="utf-8"), f"{figure} is not in {source}"
