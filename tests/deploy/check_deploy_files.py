#!/usr/bin/env python3
"""deploy_files: the deployment files render and agree with services/.

Usage: check_deploy_files.py SOURCE_DIR

Checks, with no container engine:
  - `docker-compose -f docker-compose.yml config -q` succeeds;
  - `kubectl kustomize k8s` succeeds (kubectl >= 1.14 or Debian's kubernetes-client);
  - every service (services/<name> whose CMake builds chorus-<name>, ignoring chorusd,
    plus the ten the platform needs) is a compose service and a k8s Deployment that
    runs chorus-<name>;
  - every program compose and k8s run (commands and probes) is in the Dockerfile's
    CHORUS_BINARIES, and every name there is an add_executable target;
  - the runtime image does not run as root.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

import yaml

EXPECTED = ["broker", "edge", "auth", "chat", "agents", "rag", "integrations",
            "workflows", "channels", "analytics"]
IGNORED = {"chorusd"}

failures = []
passes = 0


def check(ok, what):
    global passes
    if ok:
        passes += 1
        print("ok   " + what)
    else:
        failures.append(what)
        print("FAIL " + what)
    return ok


def run(cmd, cwd, env=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=90,
                              env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(cmd, 127, "", str(e))


def executables(root):
    """add_executable names in every CMakeLists.txt of the source tree, as regexes
    (a name built from a variable, chorus-${name}, matches any text there)."""
    names = []
    for path in glob.glob(os.path.join(root, "**", "CMakeLists.txt"), recursive=True):
        rel = os.path.relpath(path, root)
        if rel.split(os.sep)[0].startswith(("build", "var", ".")):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = re.sub(r"#[^\n]*", "", f.read())
        for m in re.finditer(r"add_executable\s*\(\s*([^\s)]+)", text):
            name = m.group(1)
            pattern = re.escape(name)
            pattern = re.sub(r"\\\$\\\{[^}]*\\\}", ".+", pattern)
            names.append((name, re.compile("^" + pattern + "$")))
    return names


def is_target(name, targets):
    return any(rx.match(name) for _, rx in targets)


def service_dirs(root):
    found = []
    for d in sorted(glob.glob(os.path.join(root, "services", "*", ""))):
        name = os.path.basename(os.path.dirname(d))
        cml = os.path.join(d, "CMakeLists.txt")
        if name in IGNORED or not os.path.isfile(cml):
            continue
        with open(cml, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if "chorus-" + name in text or "chorus-${" in text:
            found.append(name)
    return found


def command_of(container):
    cmd = container.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    return list(cmd)


def main(root):
    root = os.path.abspath(root)
    targets = executables(root)

    # ---- docker-compose
    compose = None
    tool = shutil.which("docker-compose")
    if check(tool is not None, "docker-compose is installed (apt-get install docker-compose)"):
        # The secret key has no default: compose refuses to run without one
        bare = {k: v for k, v in os.environ.items() if k != "CHORUS_SECRET_KEY"}
        r = run([tool, "-f", "docker-compose.yml", "config", "-q"], root, bare)
        check(r.returncode != 0 and "CHORUS_SECRET_KEY" in r.stderr,
              "docker-compose refuses to start without CHORUS_SECRET_KEY")
        keyed = dict(bare, CHORUS_SECRET_KEY="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        r = run([tool, "-f", "docker-compose.yml", "config", "-q"], root, keyed)
        if check(r.returncode == 0, "docker-compose -f docker-compose.yml config -q"):
            r = run([tool, "-f", "docker-compose.yml", "config"], root, keyed)
            compose = yaml.safe_load(r.stdout) or {}
        else:
            print(r.stderr.strip())

    # ---- kustomize
    k8s = None
    kubectl = shutil.which("kubectl")
    if check(kubectl is not None,
             "kubectl is installed (apt-get install kubernetes-client)"):
        r = run([kubectl, "kustomize", "k8s"], root)
        if check(r.returncode == 0, "kubectl kustomize k8s"):
            k8s = [d for d in yaml.safe_load_all(r.stdout) if d]
        else:
            print(r.stderr.strip())

    # ---- Dockerfile
    dockerfile = ""
    try:
        with open(os.path.join(root, "Dockerfile"), encoding="utf-8") as f:
            dockerfile = f.read()
    except OSError:
        pass
    m = re.search(r'^ARG CHORUS_BINARIES="([^"]*)"', dockerfile, re.M)
    image_bins = set(m.group(1).split()) if m else set()
    check(bool(image_bins), "Dockerfile declares ARG CHORUS_BINARIES")
    check(len(re.findall(r"^FROM debian:bookworm-slim", dockerfile, re.M)) >= 2,
          "Dockerfile is multi-stage on debian:bookworm-slim")
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    check(bool(users) and users[-1].split(":")[0] not in ("root", "0"),
          "the runtime image runs as a non-root user")
    for name in sorted(image_bins):
        check(is_target(name, targets),
              "Dockerfile binary %s is an add_executable target" % name)

    # ---- services
    services = sorted(set(EXPECTED) | set(service_dirs(root)))
    run_bins = set()
    if compose is not None:
        csvcs = compose.get("services", {})
        for name in services:
            svc = csvcs.get(name)
            cmd = command_of(svc or {})
            check(svc is not None and cmd[:1] == ["chorus-" + name],
                  "compose service %s runs chorus-%s" % (name, name))
        for name, svc in csvcs.items():
            if not str(svc.get("image", "")).startswith("chorus"):
                continue
            cmd = command_of(svc)
            if cmd:
                run_bins.add(cmd[0])
            test = (svc.get("healthcheck") or {}).get("test") or []
            if isinstance(test, list) and test[:1] == ["CMD"] and \
                    str(test[1]).startswith("chorus"):
                run_bins.add(test[1])
    if k8s is not None:
        deployments = [d for d in k8s if d.get("kind") == "Deployment"]
        for name in services:
            found = False
            for d in deployments:
                dname = d["metadata"]["name"]
                if dname != name and not dname.startswith(name + "-"):
                    continue
                for c in d["spec"]["template"]["spec"].get("containers", []):
                    if command_of(c)[:1] == ["chorus-" + name]:
                        found = True
            check(found, "k8s Deployment %s runs chorus-%s" % (name, name))
        for d in deployments:
            for c in d["spec"]["template"]["spec"].get("containers", []):
                if not str(c.get("image", "")).split("/")[-1].startswith("chorus"):
                    continue
                cmd = command_of(c)
                if cmd:
                    run_bins.add(cmd[0])
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    ex = ((c.get(probe) or {}).get("exec") or {}).get("command") or []
                    if ex:
                        run_bins.add(ex[0])
        brokers = [d for d in deployments if d["metadata"]["name"].startswith("broker")]
        check(len(brokers) >= 2, "k8s runs at least two brokers (Scale-out)")
    for b in sorted(run_bins):
        check(b in image_bins, "%s (run by compose/k8s) is built by the Dockerfile" % b)

    print("deploy_files: %d checks ok, %d failed" % (passes, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip())
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
