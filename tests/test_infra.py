"""Tests for infra/: deploy.sh, train.sh and teardown.sh against a fake gcloud, train_job.sh
run locally on a tiny CPU training, smoke_test.sh against local functions-framework servers (a
correct stand-in, a wrong one, and the real function)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.server import free_port, function_server

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
VENV_BIN = Path(sys.executable).parent  # functions-framework, and python3 with Pillow
BASH = shutil.which("bash")
PROJECT = "test-proj"
FAKE_URL = "https://styleserve-abc123-uc.a.run.app"
TOKEN = "fake-id-token"
ALL_APIS = "run.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com iam.googleapis.com"
REGION = "europe-west1"  # the scripts' default: L4 generally available there
BUILD_SA = f"styleserve-build@{PROJECT}.iam.gserviceaccount.com"
# Settings the scripts read from the environment; cleared so the caller's shell can't leak in.
SCRIPT_ENV = [
    "PROJECT",
    "GOOGLE_CLOUD_PROJECT",
    "REGION",
    "SERVICE",
    "ARTIFACT_REPO",
    "FUNCTION_DIR",
    "CPU",
    "MEMORY",
    "CONCURRENCY",
    "MIN_INSTANCES",
    "MAX_INSTANCES",
    "GPU_ZONAL_REDUNDANCY",
    "PUBLIC",
    "ENABLE_APIS",
    "DRY_RUN",
    "SMOKE",
    "IMAGE_TAG",
    "DEFAULT_STYLE",
    "DELETE_IMAGES",
    "DELETE_REPO",
    "BUILD_SERVICE_ACCOUNT",
    "RETRY_DELAY_S",
    "SMOKE_TOKEN",
    "SMOKE_TIMEOUT",
    "SMOKE_IMAGE",
    "PYTHON",
    "CPU_ONLY",
    "REQUEST_TIMEOUT",
    "SERVICE_ACCOUNT",
    "MODELS_BUCKET",
    "MODELS_MODE",
    "STYLE_FILE",
    "STYLE_NAME",
    "BUCKET",
    "PHOTOS",
    "JOB",
    "TRAIN_SERVICE_ACCOUNT",
    "ARCHS",
    "STEPS",
    "FAST_STEPS",
    "LOSS_NET",
    "IMAGE_SIZE",
    "BATCH_SIZE",
    "TRAIN_ARGS",
    "TASK_TIMEOUT",
    "TIME_BUDGET",
    "MAX_EXECUTIONS",
    "TORCH_INDEX",
    "TORCH_SPEC",
    "TRAIN_IMAGE",
    "BUCKET_DIR",
    "STYLE_IMAGE",
    "DATA_DIR",
    "MODELS_DIR",
    "RUNS_DIR",
    "WORK_DIR",
    "DEVICE",
    "EXPORT_ARGS",
]
DIGEST = "sha256:" + "ab" * 32
READ_ONLY = [
    ["config", "get-value"],
    ["services", "list"],
    ["artifacts", "repositories", "describe"],
    ["run", "services", "describe"],
    ["auth", "print-identity-token"],
    ["iam", "service-accounts", "describe"],
    ["artifacts", "docker", "images", "describe"],
    ["storage", "buckets", "describe"],
    ["storage", "ls"],
    ["storage", "cat"],
    ["beta", "quotas", "info", "list"],
    ["artifacts", "packages", "list"],
]

# Appends its argv (and, for a build, the files it would upload) as a JSON line to
# $FAKE_GCLOUD_LOG and answers the few read-only queries the scripts make.
FAKE_GCLOUD = """#!{python}
import json, os, sys
from pathlib import Path

args = sys.argv[1:]
env = os.environ
entry = {{"argv": args}}
if args[:2] == ["builds", "submit"]:
    root = Path(args[2])
    entry["context"] = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
with open(env["FAKE_GCLOUD_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\\n")


# Fail the first FAKE_<kind>_FAILURES calls of this kind (counted in a file), as a call made
# too early does.
def fail_first(kind, message):
    counter = Path(env["FAKE_GCLOUD_LOG"] + "." + kind)
    done = int(counter.read_text()) if counter.exists() else 0
    if done < int(env.get("FAKE_" + kind + "_FAILURES", "0")):
        counter.write_text(str(done + 1))
        sys.exit(message)


if "add-iam-policy-binding" in args:
    fail_first("GRANT", "ERROR: (gcloud) INVALID_ARGUMENT: Service account does not exist.")

if args[:3] == ["config", "get-value", "project"]:
    if env.get("FAKE_PROJECT"):
        print(env["FAKE_PROJECT"])
    else:
        print("(unset)", file=sys.stderr)
elif args[:2] == ["services", "list"]:
    print("\\n".join(env.get("FAKE_ENABLED_APIS", "").split()))
elif args[:3] == ["artifacts", "repositories", "describe"]:
    if env.get("FAKE_REPO_EXISTS") != "1":
        sys.exit("ERROR: (gcloud.artifacts.repositories.describe) NOT_FOUND")
    print("projects/p/locations/l/repositories/" + args[3])
elif args[:3] == ["run", "services", "describe"]:
    if env.get("FAKE_SERVICE_EXISTS") != "1":
        sys.exit("ERROR: (gcloud.run.services.describe) Cannot find service")
    print(env["FAKE_URL"] if any("status.url" in a for a in args) else args[3])
elif args[:2] == ["auth", "print-identity-token"]:
    print("{token}")
elif args[:3] == ["iam", "service-accounts", "describe"]:
    if env.get("FAKE_SA_EXISTS", "1") != "1":
        sys.exit("ERROR: (gcloud.iam.service-accounts.describe) NOT_FOUND")
    print(args[3])
elif args[:4] == ["artifacts", "docker", "images", "describe"]:
    print(env["FAKE_DIGEST"])
elif args[:3] == ["storage", "buckets", "describe"]:
    if env.get("FAKE_BUCKET_EXISTS", "1") != "1":
        sys.exit("ERROR: (gcloud.storage.buckets.describe) NotFoundError")
    print(args[3][len("gs://"):])
elif args[:2] == ["storage", "ls"]:
    if env.get("FAKE_PHOTOS", "1") == "1":
        print(args[2] + "a.jpg")
elif args[:4] == ["beta", "quotas", "info", "list"]:
    if "FAKE_QUOTAS_JSON" not in env:
        sys.exit("ERROR: (gcloud.beta.quotas.info.list) PERMISSION_DENIED: Cloud Quotas API has not been used")
    print(env["FAKE_QUOTAS_JSON"])
elif args[:3] == ["artifacts", "packages", "list"]:
    print("\\n".join(env.get("FAKE_PACKAGES", "").split()))
elif args[:3] == ["run", "jobs", "execute"]:
    fail_first("EXECUTE", "ERROR: (gcloud.run.jobs.execute) The execution failed.")
elif args[:2] == ["storage", "cat"]:
    status = env.get("FAKE_TRAIN_STATUS", "done")
    detail = "x.onnx" if status == "done" else "johnson at step 9000 of 40000"
    print(json.dumps({{"state": status, "detail": detail}}))
"""


class FakeGcloud:
    def __init__(self, tmp: Path):
        self.bin = tmp / "fakebin"
        self.bin.mkdir()
        gcloud = self.bin / "gcloud"
        gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable, token=TOKEN))
        gcloud.chmod(0o755)
        # sleep, as the IAM retries call it: records the wait instead of waiting.
        sleep = self.bin / "sleep"
        sleep.write_text(f'#!/bin/sh\necho "$1" >> "{tmp / "sleep.log"}"\n')
        sleep.chmod(0o755)
        self.sleeps = tmp / "sleep.log"
        self.log = tmp / "gcloud.log"
        self.log.touch()
        self.function_dir = make_function_dir(tmp / "function")
        self.env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
        self.env.update(
            PATH=f"{self.bin}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            CLOUDSDK_CONFIG=str(tmp / "gcloud-config"),
            FAKE_GCLOUD_LOG=str(self.log),
            FAKE_PROJECT=PROJECT,
            FAKE_ENABLED_APIS=ALL_APIS + " storage.googleapis.com",  # train.sh needs it too
            FAKE_REPO_EXISTS="1",
            FAKE_SERVICE_EXISTS="1",
            FAKE_URL=FAKE_URL,
            FAKE_DIGEST=DIGEST,
            FUNCTION_DIR=str(self.function_dir),
            IMAGE_TAG="t1",
        )

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return run_script(script, *args, env={**self.env, **env})

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def calls(self) -> list[list[str]]:
        return [e["argv"] for e in self.entries()]

    def find(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls() if c[: len(prefix)] == list(prefix)]

    def mutating(self) -> list[list[str]]:
        return [c for c in self.calls() if not any(c[: len(p)] == p for p in READ_ONLY)]


def make_function_dir(path: Path) -> Path:
    (path / "models").mkdir(parents=True)
    (path / "__pycache__").mkdir()
    (path / "main.py").write_text("def stylize(request):\n    return 'ok'\n")
    (path / "requirements.txt").write_text("functions-framework\n")
    (path / "requirements-cpu.txt").write_text("onnxruntime\n")
    (path / "models" / "a.onnx").write_bytes(b"onnx")
    (path / "__pycache__" / "main.cpython-312.pyc").write_bytes(b"pyc")
    return path


def run_script(script: str, *args: str, env: dict, timeout: float = 120):
    return subprocess.run(
        [BASH, str(INFRA / script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def flag(argv: list[str], name: str) -> str | None:
    """Value of --name=value or --name value in argv, else None."""
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
    return None


def env_vars(deploy: list[str]) -> dict[str, str]:
    """--set-env-vars as a dict, honouring gcloud's ^DELIM^ escape."""
    value = flag(deploy, "--set-env-vars")
    assert value is not None
    sep = ","
    if value.startswith("^"):
        sep, value = value[1:].split("^", 1)
    return dict(kv.split("=", 1) for kv in value.split(sep))


@pytest.fixture
def gcloud(tmp_path) -> FakeGcloud:
    return FakeGcloud(tmp_path)


def only_deploy(gcloud: FakeGcloud) -> list[str]:
    deploys = gcloud.find("run", "deploy")
    assert len(deploys) == 1, gcloud.calls()
    return deploys[0]


# --- deploy.sh -----------------------------------------------------------------------------


def test_deploy_defaults_to_a_cpu_service(gcloud):
    """No mode flag: the CPU service (infra/README.md "Costs" says why), as --cpu-only."""
    result = gcloud.run("deploy.sh")
    assert result.returncode == 0, result.stderr
    default = only_deploy(gcloud)
    (build,) = [e for e in gcloud.entries() if e["argv"][:2] == ["builds", "submit"]]
    assert "function/requirements-cpu.txt" in build["context"]
    assert flag(build["argv"], "--tag").endswith("/styleserve-cpu:t1")
    assert not any(a.startswith(("--gpu", "--no-gpu")) for a in default), default
    assert "--cpu-throttling" in default
    assert env_vars(default) == {"DEFAULT_ARCH": "fast", "THREADS": "4"}
    gcloud.log.write_text("")
    assert gcloud.run("deploy.sh", "--cpu-only").returncode == 0
    assert only_deploy(gcloud) == default


def test_deploy_gpu_and_authenticated(gcloud):
    result = gcloud.run("deploy.sh", "--gpu")
    assert result.returncode == 0, result.stderr

    (build,) = [e for e in gcloud.entries() if e["argv"][:2] == ["builds", "submit"]]
    image = flag(build["argv"], "--tag")
    assert image == f"{REGION}-docker.pkg.dev/{PROJECT}/styleserve/styleserve:t1"
    assert "Dockerfile" in build["context"]
    assert {"function/main.py", "function/requirements.txt", "function/models/a.onnx"} <= set(
        build["context"]
    )
    assert not any("__pycache__" in f for f in build["context"])

    deploy = only_deploy(gcloud)
    assert deploy[2] == "styleserve"
    # Deployed by the digest of the image just built, not by its tag.
    (describe,) = gcloud.find("artifacts", "docker", "images", "describe")
    assert describe[4] == image
    assert flag(deploy, "--image") == image.removesuffix(":t1") + "@" + DIGEST
    assert flag(deploy, "--timeout") == "300"
    assert flag(deploy, "--service-account") == f"styleserve-run@{PROJECT}.iam.gserviceaccount.com"
    probe = dict(kv.split("=", 1) for kv in flag(deploy, "--startup-probe").split(","))
    assert probe["httpGet.path"] == "/healthz"
    assert int(probe["periodSeconds"]) * int(probe["failureThreshold"]) <= 240
    assert int(probe["timeoutSeconds"]) <= int(probe["periodSeconds"])
    assert flag(deploy, "--add-volume") is None
    assert flag(deploy, "--project") == PROJECT
    assert flag(deploy, "--region") == REGION
    assert flag(deploy, "--gpu") == "1"
    assert flag(deploy, "--gpu-type") == "nvidia-l4"
    assert "--no-cpu-throttling" in deploy
    assert "--no-gpu-zonal-redundancy" in deploy
    assert flag(deploy, "--cpu") == "4"
    assert flag(deploy, "--memory") == "16Gi"
    assert flag(deploy, "--min-instances") == "0"
    assert flag(deploy, "--max-instances") == "1"
    assert flag(deploy, "--concurrency") == "4"
    assert "--no-allow-unauthenticated" in deploy
    assert "--allow-unauthenticated" not in deploy
    assert env_vars(deploy) == {"REQUIRE_GPU": "1", "THREADS": "4"}
    # APIs enabled, repo and accounts present: the build account's grants (idempotent), the
    # build and the deploy, nothing else.
    assert [c[:2] for c in gcloud.mutating()] == [
        ["artifacts", "repositories"],
        ["storage", "buckets"],
        ["projects", "add-iam-policy-binding"],
        ["builds", "submit"],
        ["run", "deploy"],
    ]

    assert f"Service URL: {FAKE_URL}" in result.stdout
    assert (
        f'curl -sS -X POST "{FAKE_URL}/" -H "Authorization: Bearer $(gcloud auth print-identity-token)"'
        in result.stdout
    )


def test_deploy_public_opts_out_of_auth(gcloud):
    result = gcloud.run("deploy.sh", "--public")
    assert result.returncode == 0, result.stderr
    deploy = only_deploy(gcloud)
    assert "--allow-unauthenticated" in deploy
    assert "--no-allow-unauthenticated" not in deploy
    assert "Authorization" not in result.stdout
    assert f'curl -sS -X POST "{FAKE_URL}/" -F image=@infra/smoke.jpg' in result.stdout


@pytest.mark.parametrize("how", ["flag", "env"])
def test_deploy_region_override(gcloud, how):
    args, env = (
        (["--region", "europe-west4"], {}) if how == "flag" else ([], {"REGION": "europe-west4"})
    )
    result = gcloud.run("deploy.sh", *args, **env)
    assert result.returncode == 0, result.stderr
    deploy = only_deploy(gcloud)
    assert flag(deploy, "--region") == "europe-west4"
    assert flag(deploy, "--image").startswith(f"europe-west4-docker.pkg.dev/{PROJECT}/")
    (describe,) = gcloud.find("artifacts", "repositories", "describe")
    assert flag(describe, "--location") == "europe-west4"


def test_deploy_settings_from_flags_and_env(gcloud):
    result = gcloud.run(
        "deploy.sh",
        "--gpu",
        "--concurrency",
        "8",
        "--zonal-redundancy",
        "--default-style",
        "mosaic",
        "--env",
        "CORS_ORIGINS=https://a.example,https://b.example",
        "--service",
        "art",
        MAX_INSTANCES="3",
        MEMORY="32Gi",
        PROJECT="other-proj",
    )
    assert result.returncode == 0, result.stderr
    deploy = only_deploy(gcloud)
    assert deploy[2] == "art"
    assert flag(deploy, "--project") == "other-proj"
    assert flag(deploy, "--concurrency") == "8"
    assert flag(deploy, "--max-instances") == "3"
    assert flag(deploy, "--memory") == "32Gi"
    assert "--gpu-zonal-redundancy" in deploy
    assert "--no-gpu-zonal-redundancy" not in deploy
    assert env_vars(deploy) == {
        "REQUIRE_GPU": "1",
        "THREADS": "8",
        "DEFAULT_STYLE": "mosaic",
        "CORS_ORIGINS": "https://a.example,https://b.example",
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu", "--cpu", "2"], "at least 4 CPU"),
        (["--gpu", "--memory", "8Gi"], "at least 16Gi"),
        (["--min-instances", "4"], "exceeds MAX_INSTANCES"),  # 3 on a CPU service
        (["--bogus"], "unknown argument"),
    ],
)
def test_deploy_rejects_bad_settings_before_touching_anything(gcloud, args, message):
    result = gcloud.run("deploy.sh", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert gcloud.mutating() == []


def test_deploy_dry_run_runs_no_mutating_command(gcloud):
    result = gcloud.run(
        "deploy.sh",
        "--gpu",
        "--dry-run",
        "--smoke",
        FAKE_ENABLED_APIS="run.googleapis.com",
        FAKE_REPO_EXISTS="0",
        FAKE_SERVICE_EXISTS="0",
    )
    assert result.returncode == 0, result.stderr
    assert gcloud.mutating() == []
    out = result.stdout
    assert (
        "+ gcloud services enable cloudbuild.googleapis.com artifactregistry.googleapis.com "
        f"iam.googleapis.com --project={PROJECT}" in out
    )
    assert "+ gcloud artifacts repositories create styleserve --repository-format=docker" in out
    assert "+ gcloud builds submit BUILD_CONTEXT" in out
    assert "+ gcloud run deploy styleserve" in out
    assert "--gpu-type=nvidia-l4" in out
    assert "smoke_test.sh https://SERVICE-URL --expect-gpu" in out


def test_deploy_dry_run_from_env(gcloud):
    result = gcloud.run("deploy.sh", DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    assert gcloud.mutating() == []
    assert "+ gcloud run deploy styleserve" in result.stdout


def test_deploy_missing_apis_prints_enable_line(gcloud):
    result = gcloud.run("deploy.sh", FAKE_ENABLED_APIS="run.googleapis.com")
    assert result.returncode != 0
    assert (
        "gcloud services enable cloudbuild.googleapis.com artifactregistry.googleapis.com "
        f"iam.googleapis.com --project={PROJECT}" in result.stderr
    )
    assert gcloud.mutating() == []


def test_deploy_enable_apis_and_create_repo(gcloud):
    result = gcloud.run("deploy.sh", "--enable-apis", FAKE_ENABLED_APIS="", FAKE_REPO_EXISTS="0")
    assert result.returncode == 0, result.stderr
    (enable,) = gcloud.find("services", "enable")
    assert set(enable[2:6]) == set(ALL_APIS.split())
    (create,) = gcloud.find("artifacts", "repositories", "create")
    assert create[3] == "styleserve"
    assert flag(create, "--repository-format") == "docker"
    assert flag(create, "--location") == REGION
    assert len(gcloud.find("run", "deploy")) == 1


def test_deploy_without_project_fails_clearly(gcloud):
    result = gcloud.run("deploy.sh", FAKE_PROJECT="")
    assert result.returncode != 0
    assert "no Google Cloud project set" in result.stderr
    assert "gcloud config set project" in result.stderr
    assert gcloud.mutating() == []


@pytest.mark.parametrize("script", ["deploy.sh", "teardown.sh", "train.sh"])
def test_missing_gcloud_fails_clearly(tmp_path, script):
    # A PATH with the usual tools but no gcloud (one is installed in /usr/bin on some machines).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in [
        "bash",
        "env",
        "dirname",
        "cat",
        "mktemp",
        "rm",
        "tar",
        "date",
        "cp",
        "mkdir",
        "grep",
        "head",
        "tr",
        "python3",
    ]:
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    env["PATH"] = str(bin_dir)
    result = run_script(script, "--project", PROJECT, env=env)
    assert result.returncode != 0
    assert "gcloud not found on PATH" in result.stderr


@pytest.mark.parametrize("script", ["deploy.sh", "teardown.sh", "smoke_test.sh", "train.sh"])
def test_help_documents_settings(gcloud, script):
    result = gcloud.run(script, "--help")
    assert result.returncode == 0
    assert "Usage: infra/" + script in result.stdout
    if script != "smoke_test.sh":
        for text in (REGION, "--dry-run", "[REGION]", "[PROJECT]", "styleserve"):
            assert text in result.stdout
    if script == "deploy.sh":
        for text in ("16Gi", "--public", "[MAX_INSTANCES]", "--no-gpu-zonal-redundancy"):
            assert text in result.stdout
        for text in ("--cpu-only", "--gpu", "--models-bucket", "--service-account", "--timeout"):
            assert text in result.stdout
        for text in ("--build-service-account", "by invitation: us-central1 asia-south1"):
            assert text in result.stdout
    if script == "train.sh":
        for text in ("--style", "--bucket", "--photos", "[TIME_BUDGET]", "cu126", "vgg16"):
            assert text in result.stdout


def test_deploy_cpu_only(gcloud):
    result = gcloud.run("deploy.sh", "--cpu-only", "--smoke", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"smoke_test.sh {FAKE_URL}" in result.stdout
    assert "--expect-gpu" not in result.stdout
    assert "--gpu" not in result.stdout
    gcloud.log.write_text("")
    result = gcloud.run("deploy.sh", "--cpu-only")
    assert result.returncode == 0, result.stderr
    (build,) = [e for e in gcloud.entries() if e["argv"][:2] == ["builds", "submit"]]
    image = flag(build["argv"], "--tag")
    assert image == f"{REGION}-docker.pkg.dev/{PROJECT}/styleserve/styleserve-cpu:t1"
    assert "function/requirements-cpu.txt" in build["context"]
    deploy = only_deploy(gcloud)
    assert not any(a.startswith(("--gpu", "--no-gpu")) for a in deploy), deploy
    assert "--no-cpu-throttling" not in deploy
    assert flag(deploy, "--image") == image.removesuffix(":t1") + "@" + DIGEST
    assert flag(deploy, "--cpu") == "2"
    assert flag(deploy, "--memory") == "4Gi"
    assert flag(deploy, "--concurrency") == "4"
    assert flag(deploy, "--max-instances") == "3"
    assert flag(deploy, "--startup-probe").startswith("httpGet.path=/healthz,")
    assert flag(deploy, "--service-account") == f"styleserve-run@{PROJECT}.iam.gserviceaccount.com"
    assert env_vars(deploy) == {"DEFAULT_ARCH": "fast", "THREADS": "4"}


def test_cpu_dockerfile_has_no_cuda():
    text = (INFRA / "Dockerfile.cpu").read_text()
    assert "requirements-cpu.txt" in text
    assert "nvidia" not in text.lower().replace("no nvidia wheels", "")
    assert "sm_89 kernels" not in (INFRA / "Dockerfile").read_text()


def test_deploy_cpu_only_allows_small_instances(gcloud):
    result = gcloud.run("deploy.sh", "--cpu-only", "--cpu", "1", "--memory", "512Mi")
    assert result.returncode == 0, result.stderr
    deploy = only_deploy(gcloud)
    assert (flag(deploy, "--cpu"), flag(deploy, "--memory")) == ("1", "512Mi")


@pytest.mark.parametrize(
    ("mode", "model_dir"), [("beside", "/models:/app/models"), ("instead", "/models")]
)
def test_deploy_models_bucket(gcloud, mode, model_dir):
    result = gcloud.run("deploy.sh", "--models-bucket", "gs://my-styles/", "--models-mode", mode)
    assert result.returncode == 0, result.stderr
    deploy = only_deploy(gcloud)
    volumes = [a for a in deploy if a.startswith("--add-volume=")]
    assert volumes == ["--add-volume=name=models,type=cloud-storage,bucket=my-styles,readonly=true"]
    assert flag(deploy, "--add-volume-mount") == "volume=models,mount-path=/models"
    assert env_vars(deploy)["MODEL_DIR"] == model_dir
    sa = f"styleserve-run@{PROJECT}.iam.gserviceaccount.com"
    (grant,) = [
        c
        for c in gcloud.find("storage", "buckets", "add-iam-policy-binding")
        if "my-styles" in c[3]
    ]
    assert grant[3] == "gs://my-styles"
    assert flag(grant, "--member") == f"serviceAccount:{sa}"
    assert flag(grant, "--role") == "roles/storage.objectViewer"
    # The grant comes before the deploy that needs it.
    calls = gcloud.calls()
    assert calls.index(grant) < calls.index(deploy)


def test_deploy_models_bucket_must_exist(gcloud):
    missing = dict(FAKE_BUCKET_EXISTS="0", FAKE_SA_EXISTS="0", FAKE_REPO_EXISTS="0")
    result = gcloud.run("deploy.sh", "--models-bucket", "nope-bucket", **missing)
    assert result.returncode != 0
    assert "gs://nope-bucket not found" in result.stderr
    assert gcloud.mutating() == []
    # A dry run only warns, and still shows the whole deploy.
    result = gcloud.run("deploy.sh", "--models-bucket", "nope-bucket", "--dry-run", **missing)
    assert result.returncode == 0, result.stderr
    assert "warning: bucket gs://nope-bucket not found" in result.stderr
    assert "--add-volume=name=models,type=cloud-storage,bucket=nope-bucket,readonly=true" in (
        result.stdout
    )
    assert gcloud.mutating() == []


def test_deploy_creates_missing_service_account(gcloud):
    result = gcloud.run("deploy.sh", FAKE_SA_EXISTS="0")
    assert result.returncode == 0, result.stderr
    build_sa, create = gcloud.find("iam", "service-accounts", "create")
    assert (build_sa[3], create[3]) == ("styleserve-build", "styleserve-run")
    assert flag(create, "--project") == PROJECT
    # No project-level role grants: the runtime identity has no project permissions (the one
    # project grant is the build account's log writer).
    (project_grant,) = gcloud.find("projects", "add-iam-policy-binding")
    assert flag(project_grant, "--member") == f"serviceAccount:{BUILD_SA}"


def test_deploy_given_service_account_is_used_not_created(gcloud):
    sa = f"custom@{PROJECT}.iam.gserviceaccount.com"
    result = gcloud.run("deploy.sh", "--service-account", sa, "--timeout", "900")
    assert result.returncode == 0, result.stderr
    deploy = only_deploy(gcloud)
    assert flag(deploy, "--service-account") == sa
    assert flag(deploy, "--timeout") == "900"
    assert not gcloud.find("iam", "service-accounts", "create")
    result = gcloud.run("deploy.sh", "--service-account", sa, FAKE_SA_EXISTS="0")
    assert result.returncode != 0
    assert f"service account {sa} not found" in result.stderr


def l4_quotas(without: int | None, with_zonal: int = 5, region: str = REGION) -> str:
    """gcloud beta quotas info list --format=json, as the Cloud Quotas API's QuotaInfo
    resources: the region's own value where there is one, else the default."""

    def info(kind: str, value: int | None) -> dict:
        dims = [{"dimensions": {}, "details": {"value": "7"}}]
        if value is not None:
            dims.append({"dimensions": {"region": region}, "details": {"value": str(value)}})
        return {
            "service": "run.googleapis.com",
            "quotaDisplayName": f"Total Nvidia L4 GPU allocation {kind} zonal redundancy, per project per region",
            "dimensionsInfos": dims,
        }

    cpu = {"quotaDisplayName": "CPU allocation, per project per region", "dimensionsInfos": []}
    return json.dumps([cpu, info("without", without), info("with", with_zonal)])


def test_deploy_fresh_project_creates_the_build_account_and_retries_its_grants(gcloud):
    """Everything missing (APIs, repo, service accounts, the build bucket) and the first two IAM
    grants refused while the new accounts propagate: the API list includes iam, the build runs
    as its own account with only a build's roles, and the refused grants are retried."""
    missing = dict(FAKE_ENABLED_APIS="", FAKE_REPO_EXISTS="0", FAKE_SA_EXISTS="0",
                   FAKE_BUCKET_EXISTS="0", FAKE_GRANT_FAILURES="2")  # fmt: skip
    result = gcloud.run("deploy.sh", "--enable-apis", **missing)
    assert result.returncode == 0, result.stderr
    (enable,) = gcloud.find("services", "enable")
    assert "iam.googleapis.com" in enable
    calls = gcloud.calls()
    creates = gcloud.find("iam", "service-accounts", "create")
    assert [c[3] for c in creates] == ["styleserve-build", "styleserve-run"]
    assert calls.index(enable) < calls.index(creates[0])
    (bucket,) = gcloud.find("storage", "buckets", "create")
    assert bucket[3] == f"gs://{PROJECT}_cloudbuild"
    assert flag(bucket, "--location") == REGION
    member = f"serviceAccount:{BUILD_SA}"
    (repo_grant,) = {
        tuple(c) for c in gcloud.find("artifacts", "repositories", "add-iam-policy-binding")
    }
    assert repo_grant[3] == "styleserve"
    assert flag(list(repo_grant), "--role") == "roles/artifactregistry.writer"
    (bucket_grant,) = {
        tuple(c) for c in gcloud.find("storage", "buckets", "add-iam-policy-binding")
    }
    assert bucket_grant[3] == f"gs://{PROJECT}_cloudbuild"
    assert flag(list(bucket_grant), "--role") == "roles/storage.objectUser"
    (log_grant,) = {tuple(c) for c in gcloud.find("projects", "add-iam-policy-binding")}
    assert flag(list(log_grant), "--role") == "roles/logging.logWriter"
    assert {flag(list(g), "--member") for g in (repo_grant, bucket_grant, log_grant)} == {member}
    # The repository grant was refused twice and retried after 5 and 10 s.
    assert len(gcloud.find("artifacts", "repositories", "add-iam-policy-binding")) == 3
    assert gcloud.sleeps.read_text().split() == ["5", "10"]
    assert "trying again in 5s" in result.stderr
    (build,) = gcloud.find("builds", "submit")
    assert flag(build, "--service-account") == f"projects/{PROJECT}/serviceAccounts/{BUILD_SA}"
    assert flag(build, "--gcs-source-staging-dir") == f"gs://{PROJECT}_cloudbuild/source"
    assert flag(build, "--gcs-log-dir") == f"gs://{PROJECT}_cloudbuild/logs"
    grants = [i for i, c in enumerate(calls) if "add-iam-policy-binding" in c]
    assert max(grants) < calls.index(build)


def test_deploy_gives_up_on_a_grant_after_five_tries(gcloud):
    result = gcloud.run("deploy.sh", FAKE_SA_EXISTS="0", FAKE_GRANT_FAILURES="9")
    assert result.returncode != 0
    assert "still failing after 5 tries: gcloud artifacts repositories add-iam-policy-binding" in (
        result.stderr
    )
    assert gcloud.sleeps.read_text().split() == ["5", "10", "20", "40"]
    assert not gcloud.find("builds", "submit")


def test_deploy_dry_run_on_a_fresh_project_shows_the_build_account(gcloud):
    result = gcloud.run("deploy.sh", "--dry-run", FAKE_ENABLED_APIS="", FAKE_SA_EXISTS="0",
                        FAKE_BUCKET_EXISTS="0", FAKE_REPO_EXISTS="0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert gcloud.mutating() == []
    assert not gcloud.sleeps.exists()
    out = result.stdout
    for line in (
        "iam.googleapis.com",
        f"+ gcloud iam service-accounts create styleserve-build --project={PROJECT}",
        f"+ gcloud storage buckets create gs://{PROJECT}_cloudbuild",
        "--role=roles/artifactregistry.writer",
        "--role=roles/storage.objectUser",
        f"+ gcloud projects add-iam-policy-binding {PROJECT} --member=serviceAccount:{BUILD_SA} --role=roles/logging.logWriter",
        f"--service-account=projects/{PROJECT}/serviceAccounts/{BUILD_SA}",
    ):
        assert line in out, line


def test_deploy_build_bucket_name_follows_gcloud(gcloud):
    result = gcloud.run("deploy.sh", "--project", "my-google-app", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "--gcs-log-dir=gs://my-elgoog-app_cloudbuild/logs" in result.stdout


def test_deploy_given_build_service_account(gcloud):
    sa = f"builder@{PROJECT}.iam.gserviceaccount.com"
    result = gcloud.run("deploy.sh", "--build-service-account", sa)
    assert result.returncode == 0, result.stderr
    (build,) = gcloud.find("builds", "submit")
    assert flag(build, "--service-account") == f"projects/{PROJECT}/serviceAccounts/{sa}"
    result = gcloud.run("deploy.sh", "--build-service-account", sa, FAKE_SA_EXISTS="0")
    assert result.returncode != 0
    assert f"build service account {sa} not found" in result.stderr


@pytest.mark.parametrize(
    ("args", "quotas", "message"),
    [
        ([], l4_quotas(without=0), "L4 GPU quota (without zonal redundancy) in europe-west1 is 0"),
        (["--max-instances", "3"], l4_quotas(without=2), "is 2, and this needs 3"),
        (
            ["--zonal-redundancy"],
            l4_quotas(without=4, with_zonal=0),
            "(with zonal redundancy) in europe-west1 is 0",
        ),
    ],
)
def test_deploy_gpu_stops_before_the_build_without_quota(gcloud, args, quotas, message):
    missing = dict(FAKE_SA_EXISTS="0", FAKE_REPO_EXISTS="0")
    result = gcloud.run("deploy.sh", "--gpu", *args, FAKE_QUOTAS_JSON=quotas, **missing)
    assert result.returncode != 0
    assert message in result.stderr
    assert gcloud.mutating() == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FAKE_QUOTAS_JSON": l4_quotas(without=1)},
            "quota (without zonal redundancy) in europe-west1: 1",
        ),
        ({"FAKE_QUOTAS_JSON": l4_quotas(without=None)}, "in europe-west1: 7"),  # the default
        ({"FAKE_QUOTAS_JSON": "[]"}, "warning: no Cloud Run L4 quota entry"),
        ({}, "warning: could not read Cloud Run's GPU quota"),  # Cloud Quotas API off
    ],
)
def test_deploy_gpu_goes_on_when_quota_is_enough_or_unknown(gcloud, env, message):
    result = gcloud.run("deploy.sh", "--gpu", **env)
    assert result.returncode == 0, result.stderr
    assert message in result.stderr
    assert len(gcloud.find("run", "deploy")) == 1


def test_deploy_cpu_does_not_read_gpu_quota(gcloud):
    assert gcloud.run("deploy.sh").returncode == 0
    assert not gcloud.find("beta", "quotas")


@pytest.mark.parametrize(
    ("region", "warning"),
    [
        ("europe-west1", None),
        ("us-central1", "us-central1 are by invitation only"),
        ("asia-south1", "asia-south1 are by invitation only"),
        ("southamerica-east1", "not in the L4 regions known to this script"),
    ],
)
def test_deploy_gpu_region_warnings(gcloud, region, warning):
    result = gcloud.run("deploy.sh", "--gpu", "--region", region, "--dry-run")
    assert result.returncode == 0, result.stderr
    if warning:
        assert warning in result.stderr
    else:
        assert "warning: " + region not in result.stderr and "by invitation" not in result.stderr


def test_deploy_cpu_service_named_cpu_gets_one_suffix(gcloud):
    result = gcloud.run("deploy.sh", "--cpu-only", "--service", "styleserve-cpu")
    assert result.returncode == 0, result.stderr
    (build,) = gcloud.find("builds", "submit")
    assert flag(build, "--tag").endswith("/styleserve/styleserve-cpu:t1")


# --- train.sh ------------------------------------------------------------------------------


@pytest.fixture
def painting(tmp_path) -> Path:
    from devtools.images import make_photo

    path = tmp_path / "My Painting.JPG"
    make_photo(64, 48, seed=3).save(path, "JPEG")
    return path


def test_train_records_the_whole_pipeline(gcloud, painting, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    result = gcloud.run("train.sh", "--style", str(painting), "--bucket", "gs://my-styles",
                        "--photos", str(photos), "--steps", "30000")  # fmt: skip
    assert result.returncode == 0, result.stderr
    kinds = [c[:3] for c in gcloud.mutating()]
    assert kinds == [
        ["storage", "cp", str(painting)],
        ["storage", "rsync", str(photos)],
        ["storage", "buckets", "add-iam-policy-binding"],
        # the build service account's grants, then the build as that account
        ["artifacts", "repositories", "add-iam-policy-binding"],
        ["storage", "buckets", "add-iam-policy-binding"],
        ["projects", "add-iam-policy-binding", PROJECT],
        ["builds", "submit", kinds[6][2]],
        ["run", "jobs", "deploy"],
        ["run", "jobs", "execute"],
    ]
    cp, rsync, grant, *_, submit, deploy, execute = gcloud.mutating()
    assert flag(submit, "--service-account") == f"projects/{PROJECT}/serviceAccounts/{BUILD_SA}"
    assert cp[3] == "gs://my-styles/styles/my_painting.jpg"
    assert rsync[3] == "gs://my-styles/photos" and "--recursive" in rsync
    sa = f"styleserve-train@{PROJECT}.iam.gserviceaccount.com"
    assert flag(grant, "--member") == f"serviceAccount:{sa}"
    assert flag(grant, "--role") == "roles/storage.objectUser"

    (build,) = [e for e in gcloud.entries() if e["argv"][:2] == ["builds", "submit"]]
    image = flag(build["argv"], "--tag")
    assert image == f"{REGION}-docker.pkg.dev/{PROJECT}/styleserve/styleserve-train:t1"
    assert {"Dockerfile", "pyproject.toml", "infra/train_job.sh", "infra/_common.sh", "training/train.py",
            "export/onnx_export.py", "function/stylefn/contract.py"} <= set(build["context"])  # fmt: skip

    assert deploy[3] == "styleserve-train"
    assert flag(deploy, "--image") == image.removesuffix(":t1") + "@" + DIGEST
    assert flag(deploy, "--gpu") == "1"
    assert flag(deploy, "--gpu-type") == "nvidia-l4"
    assert "--no-gpu-zonal-redundancy" in deploy
    assert flag(deploy, "--task-timeout") == "3600s"
    assert flag(deploy, "--service-account") == sa
    assert flag(deploy, "--add-volume") == "name=bucket,type=cloud-storage,bucket=my-styles"
    assert flag(deploy, "--add-volume-mount") == "volume=bucket,mount-path=/bucket"
    env = env_vars(deploy)
    assert env["STYLE_NAME"] == "my_painting"
    assert env["STYLE_IMAGE"] == "/bucket/styles/my_painting.jpg"
    assert env["STEPS"] == "30000"
    assert env["TIME_BUDGET"] == "3000"
    assert env["LOSS_NET"] == "auto"
    assert execute[3] == "styleserve-train" and "--wait" in execute

    out = result.stdout
    assert "gs://my-styles/my_painting.onnx gs://my-styles/my_painting.fast.onnx" in out
    assert f"infra/deploy.sh --project {PROJECT} --region {REGION} --models-bucket my-styles" in out


def test_train_staged_dockerfile_uses_cuda12_torch(gcloud, painting, tmp_path):
    text = (INFRA / "Dockerfile.train").read_text()
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cu126" in text
    assert 'startswith("12.")' in text


def test_train_dry_run_changes_nothing(gcloud, painting):
    result = gcloud.run("train.sh", "--style", str(painting), "--bucket", "new-bucket",
                        "--name", "starry", "--dry-run", FAKE_BUCKET_EXISTS="0",
                        FAKE_PHOTOS="0", FAKE_SA_EXISTS="0", FAKE_REPO_EXISTS="0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert gcloud.mutating() == []
    out = result.stdout
    for line in (
        f"+ gcloud storage buckets create gs://new-bucket --project={PROJECT} --location={REGION}",
        f"+ gcloud storage cp {painting}".replace(str(painting), f"'{painting}'"),
        f"+ gcloud iam service-accounts create styleserve-train --project={PROJECT}",
        "+ gcloud artifacts repositories create styleserve",
        "+ gcloud builds submit BUILD_CONTEXT",
        "+ gcloud run jobs deploy styleserve-train",
        "--gpu-type=nvidia-l4",
        "+ gcloud run jobs execute styleserve-train",
        "Next step:",
    ):
        assert line in out, line
    assert "needs --photos DIR" in result.stderr


def test_train_resumes_over_several_executions(gcloud, painting):
    result = gcloud.run("train.sh", "--style", str(painting), "--bucket", "b-1",
                        "--max-executions", "3", FAKE_TRAIN_STATUS="training")  # fmt: skip
    assert result.returncode != 0
    # Same status after each execution: stops after the second, saying why.
    assert len(gcloud.find("run", "jobs", "execute")) == 2
    assert "made no progress" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bucket", "b-1"], "--style PAINTING is required"),
        (
            ["--style", "STYLE", "--bucket", "b-1", "--time-budget", "3500"],
            "leaves under 5 minutes",
        ),
        (["--style", "STYLE", "--bucket", "b-1", "--task-timeout", "7200"], "at most 3600"),
        (["--style", "STYLE", "--bucket", "B_ad!"], "--bucket wants"),
        (["--style", "STYLE", "--bucket", "b-1", "--archs", "vgg"], "--archs must be"),
        (["--style", "STYLE"], "--bucket NAME is required"),
    ],
)
def test_train_rejects_bad_settings_before_touching_anything(gcloud, painting, args, message):
    args = [str(painting) if a == "STYLE" else a for a in args]
    result = gcloud.run("train.sh", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert gcloud.mutating() == []


def test_train_with_given_image_skips_the_build(gcloud, painting):
    result = gcloud.run("train.sh", "--style", str(painting), "--bucket", "b-1",
                        "--image", "us-docker.pkg.dev/p/r/train@sha256:1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not gcloud.find("builds", "submit")
    (deploy,) = gcloud.find("run", "jobs", "deploy")
    assert flag(deploy, "--image") == "us-docker.pkg.dev/p/r/train@sha256:1"


def test_train_failed_execution_says_how_to_resume(gcloud, painting):
    result = gcloud.run("train.sh", "--style", str(painting), "--bucket", "b-1",
                        FAKE_EXECUTE_FAILURES="1")  # fmt: skip
    assert result.returncode != 0
    assert "execution 1 failed" in result.stderr
    assert "Resume with the same command: training continues from gs://b-1/runs/my_painting" in (
        result.stderr
    )
    assert "gcloud run jobs executions list --job=styleserve-train" in result.stderr


def test_train_builds_as_the_build_account_and_checks_quota_first(gcloud, painting):
    result = gcloud.run("train.sh", "--style", str(painting), "--bucket", "b-1",
                        FAKE_QUOTAS_JSON=l4_quotas(without=0))  # fmt: skip
    assert result.returncode != 0
    assert "is 0, and this needs 1" in result.stderr
    assert gcloud.mutating() == []


def test_train_add_style_teaches_the_bundled_network_a_new_style(gcloud, painting):
    result = gcloud.run("train.sh", "--style", str(painting), "--bucket", "b-1", "--add-style")
    assert result.returncode == 0, result.stderr
    (deploy,) = gcloud.find("run", "jobs", "deploy")
    env = env_vars(deploy)
    assert (env["ADD_STYLE"], env["ARCHS"], env["STEPS"]) == ("1", "fast", "400")
    (build,) = [e for e in gcloud.entries() if e["argv"][:2] == ["builds", "submit"]]
    assert "function/models/bundled.fast.onnx" in build["context"]  # the trunk it joins
    assert "Style 'my_painting': gs://b-1/my_painting.fast.onnx\n" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "my-painting"], "letters, digits and '_'"),
        (["--archs", "johnson"], "leave out --archs"),
    ],
)
def test_train_add_style_refusals(gcloud, painting, args, message):
    result = gcloud.run(
        "train.sh", "--style", str(painting), "--bucket", "b-1", "--add-style", *args
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert gcloud.mutating() == []


@pytest.mark.parametrize("given", ["folder", "files"])
def test_train_several_paintings_train_one_network(gcloud, painting, tmp_path, given):
    from devtools.images import make_photo

    folder = tmp_path / "Duo"
    folder.mkdir()
    make_photo(40, 40, seed=5).save(folder / "waves.png")
    (folder / "notes.txt").write_text("not a painting")
    (folder / "checks.jpg").write_bytes(painting.read_bytes())
    args, name = {
        "folder": (["--style", str(folder)], "duo"),  # named after the folder
        "files": (["--style", str(folder / "waves.png"), "--style", str(painting),
                   "--name", "pair"], "pair"),
    }[given]  # fmt: skip
    result = gcloud.run("train.sh", *args, "--bucket", "b-1")
    assert result.returncode == 0, result.stderr
    (sync,) = [c for c in gcloud.find("storage", "rsync") if "styles" in c[3]]
    assert sync[3] == f"gs://b-1/styles/{name}"
    assert "--delete-unmatched-destination-objects" in sync  # nothing stale joins the network
    env = env_vars(gcloud.find("run", "jobs", "deploy")[0])
    assert (env["STYLE_IMAGE"], env["ARCHS"]) == (f"/bucket/styles/{name}", "fast")
    assert f"Style '{name}': gs://b-1/{name}.fast.onnx\n" in result.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "name it with --name NAME"),
        (["--name", "duo", "--archs", "johnson fast"], "trains one arch"),
        (["--name", "duo", "--add-style"], "--add-style adds one painting"),
    ],
)
def test_train_several_paintings_refusals(gcloud, painting, tmp_path, extra, message):
    other = tmp_path / "other.jpg"
    other.write_bytes(painting.read_bytes())
    result = gcloud.run(
        "train.sh", "--style", str(painting), "--style", str(other), "--bucket", "b-1", *extra
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert gcloud.mutating() == []


def test_train_refuses_two_paintings_of_one_file_name(gcloud, painting, tmp_path):
    (tmp_path / "b").mkdir()
    twin = tmp_path / "b" / painting.name
    twin.write_bytes(painting.read_bytes())
    result = gcloud.run(
        "train.sh",
        "--style",
        str(painting),
        "--style",
        str(twin),
        "--name",
        "duo",
        "--bucket",
        "b-1",
    )
    assert result.returncode != 0
    assert f"two paintings share the file name {painting.name}" in result.stderr


# --- train_job.sh, the job's entrypoint, run locally ---------------------------------------


def test_train_job_runs_locally_end_to_end(tmp_path):
    from devtools.images import make_photo

    bucket = tmp_path / "bucket"
    (bucket / "photos").mkdir(parents=True)
    (bucket / "styles").mkdir()
    for i in range(3):
        make_photo(64, 48, seed=i).save(bucket / "photos" / f"p{i}.jpg")
    make_photo(64, 64, seed=9).save(bucket / "styles" / "tiny.png")
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1", STEPS="2", FAST_STEPS="2", LOSS_NET="efficientnet-lite0")  # fmt: skip
    args = ["--name", "tiny", "--bucket-dir", str(bucket), "--work-dir", str(tmp_path / "work"),
            "--image-size", "32", "--batch-size", "1", "--device", "cpu",
            "--train-args", "--workers 0 --style-size 64"]  # fmt: skip
    result = run_script("train_job.sh", *args, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    import onnx

    for name, arch in (("tiny.onnx", "johnson"), ("tiny.fast.onnx", "fast")):
        model = onnx.load(str(bucket / name))
        onnx.checker.check_model(model)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta.get("name") == "tiny", meta
        assert meta.get("arch", "johnson") == arch
        tiles = bucket / name.replace(".onnx", ".tiles.onnx")  # published with its model
        assert {p.key: p.value for p in onnx.load(str(tiles)).metadata_props}["name"] == "tiny"
    assert not list(bucket.glob("*.partial"))
    status = json.loads((bucket / "runs" / "tiny" / "status.json").read_text())
    assert status["state"] == "done"
    assert (bucket / "runs" / "tiny" / "johnson" / "last.pt").is_file()
    assert (bucket / "runs" / "tiny" / "loss_net").read_text().strip() == "efficientnet-lite0"

    # Run again: both archs are done, so nothing is trained or exported again.
    mtime = (bucket / "tiny.onnx").stat().st_mtime
    again = run_script("train_job.sh", *args, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2/2 steps already done" in again.stderr
    assert "exporting" not in again.stderr
    assert (bucket / "tiny.onnx").stat().st_mtime == mtime


def test_train_job_resumes_when_the_time_budget_runs_out(tmp_path):
    from devtools.images import make_photo

    bucket = tmp_path / "bucket"
    (bucket / "photos").mkdir(parents=True)
    (bucket / "styles").mkdir()
    make_photo(48, 48, seed=1).save(bucket / "photos" / "p.jpg")
    make_photo(48, 48, seed=2).save(bucket / "styles" / "s.jpg")
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")  # fmt: skip
    # A budget under a minute: the job saves a "training" status and trains nothing.
    args = ["--name", "s", "--bucket-dir", str(bucket), "--archs", "fast", "--time-budget", "30", "--work-dir", str(tmp_path / "w"),
            "--loss-net", "efficientnet-lite0", "--device", "cpu"]  # fmt: skip
    result = run_script("train_job.sh", *args, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "run again to resume" in result.stderr
    status = json.loads((bucket / "runs" / "s" / "status.json").read_text())
    assert status == {**status, "state": "training", "detail": "fast at step 0 of 40000"}
    assert not list(bucket.glob("*.onnx"))


def test_train_job_adds_a_style_to_the_bundled_network(tmp_path):
    from devtools.images import make_photo

    bucket = tmp_path / "bucket"
    (bucket / "photos").mkdir(parents=True)
    (bucket / "styles").mkdir()
    for i in range(2):
        make_photo(48, 48, seed=i).save(bucket / "photos" / f"p{i}.jpg")
    make_photo(64, 64, seed=9).save(bucket / "styles" / "tiny.png")
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1", STEPS="2")  # fmt: skip
    args = ["--name", "tiny", "--bucket-dir", str(bucket), "--work-dir", str(tmp_path / "work"),
            "--add-style", "--image-size", "32", "--batch-size", "1", "--device", "cpu",
            "--train-args", "--workers 0 --style-size 64"]  # fmt: skip
    result = run_script("train_job.sh", *args, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(bucket / "tiny.fast.onnx")).metadata_props}
    assert (meta["name"], meta["arch"], meta["training_steps"]) == ("tiny", "fast", "2")
    # the bundled network's shape, which only the new style's norms changed
    bundled = REPO / "function" / "models" / "bundled.fast.onnx"
    trunk = {p.key: p.value for p in onnx.load(str(bundled)).metadata_props}
    assert (
        json.loads(meta["model_config"])["base_channels"]
        == json.loads(trunk["model_config"])["base_channels"]
    )
    assert (bucket / "tiny.fast.tiles.onnx").is_file() and not list(bucket.glob("*.partial"))
    status = json.loads((bucket / "runs" / "tiny" / "status.json").read_text())
    assert status["state"] == "done" and status["detail"] == "tiny.fast.onnx"
    assert (bucket / "runs" / "tiny" / "add" / "last.pt").is_file()
    # Run again: done, so nothing is trained or written again.
    mtime = (bucket / "tiny.fast.onnx").stat().st_mtime
    again = run_script("train_job.sh", *args, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already written" in again.stderr
    assert (bucket / "tiny.fast.onnx").stat().st_mtime == mtime


def test_train_job_trains_one_network_of_a_folder_of_paintings(tmp_path):
    from devtools.images import make_photo

    bucket = tmp_path / "bucket"
    (bucket / "photos").mkdir(parents=True)
    (bucket / "styles" / "duo").mkdir(parents=True)
    make_photo(48, 48, seed=1).save(bucket / "photos" / "p.jpg")
    make_photo(64, 64, seed=2).save(bucket / "styles" / "duo" / "waves.png")
    make_photo(64, 64, seed=3).save(bucket / "styles" / "duo" / "checks.jpg")
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1", STEPS="2", LOSS_NET="efficientnet-lite0")  # fmt: skip
    args = ["--name", "duo", "--bucket-dir", str(bucket), "--work-dir", str(tmp_path / "w"),
            "--image-size", "32", "--batch-size", "1", "--device", "cpu",
            "--train-args", "--workers 0 --style-size 64"]  # fmt: skip
    result = run_script("train_job.sh", *args, env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(bucket / "duo.fast.onnx")).metadata_props}
    assert meta["name"] == "duo"
    assert [s["name"] for s in json.loads(meta["styles"])] == ["checks", "waves"]
    assert not (bucket / "duo.onnx").exists()  # one arch: fast, the folder's default
    refused = run_script("train_job.sh", *args, "--archs", "johnson fast", env=env)
    assert refused.returncode != 0 and "trains one arch" in refused.stderr


def test_train_job_reports_a_failed_training_as_a_failure(tmp_path):
    from devtools.images import make_photo

    bucket = tmp_path / "bucket"
    (bucket / "photos").mkdir(parents=True)
    (bucket / "styles").mkdir()
    make_photo(48, 48, seed=1).save(bucket / "photos" / "p.jpg")
    make_photo(48, 48, seed=2).save(bucket / "styles" / "s.jpg")
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1")  # fmt: skip
    # one photo, batch 4: training.train refuses; the job must not call that a used-up budget
    args = ["--name", "s", "--bucket-dir", str(bucket), "--archs", "fast", "--work-dir", str(tmp_path / "w"),
            "--loss-net", "efficientnet-lite0", "--device", "cpu", "--steps", "2"]  # fmt: skip
    result = run_script("train_job.sh", *args, env=env, timeout=300)
    assert result.returncode != 0
    assert "fewer than one batch" in result.stderr and "fast: training failed" in result.stderr
    assert "run again to resume" not in result.stderr


def test_train_job_needs_a_painting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    result = run_script("train_job.sh", "--name", "x", "--bucket-dir", str(tmp_path), env=env)
    assert result.returncode != 0
    assert "no single painting" in result.stderr


# --- teardown.sh ---------------------------------------------------------------------------


def test_teardown_deletes_service_and_prints_image_cleanup(gcloud):
    result = gcloud.run("teardown.sh", REGION="europe-west4")
    assert result.returncode == 0, result.stderr
    (delete,) = gcloud.find("run", "services", "delete")
    assert delete[3] == "styleserve"
    assert flag(delete, "--region") == "europe-west4"
    assert flag(delete, "--project") == PROJECT
    assert gcloud.find("artifacts", "repositories", "delete") == []
    assert (
        "gcloud artifacts repositories delete styleserve --location=europe-west4 "
        f"--project={PROJECT}" in result.stdout
    )


PACKAGES = f"projects/{PROJECT}/locations/{REGION}/repositories/styleserve/packages/"


def test_teardown_delete_images_keeps_the_training_image(gcloud):
    """--delete-images deletes this service's images (GPU and CPU), not train.sh's, and says
    what stayed; the repository goes only with --delete-repo, which names what goes with it."""
    images = " ".join(
        PACKAGES + name for name in ("styleserve", "styleserve-cpu", "styleserve-train")
    )
    result = gcloud.run("teardown.sh", "--delete-images", FAKE_PACKAGES=images)
    assert result.returncode == 0, result.stderr
    assert len(gcloud.find("run", "services", "delete")) == 1
    deleted = gcloud.find("artifacts", "packages", "delete")
    assert [d[3] for d in deleted] == ["styleserve", "styleserve-cpu"]
    assert all(flag(d, "--repository") == "styleserve" for d in deleted)
    assert not gcloud.find("artifacts", "repositories", "delete")
    assert "images: styleserve-train;" in result.stdout

    gcloud.log.write_text("")
    result = gcloud.run("teardown.sh", "--delete-repo", FAKE_PACKAGES=images)
    assert result.returncode == 0, result.stderr
    (delete,) = gcloud.find("artifacts", "repositories", "delete")
    assert delete[3] == "styleserve"
    assert "also styleserve-train" in result.stderr


def test_teardown_cpu_service_name_matches_its_image(gcloud):
    images = " ".join(PACKAGES + name for name in ("styleserve-cpu", "other"))
    result = gcloud.run("teardown.sh", "--service", "styleserve-cpu", "--delete-images",
                        FAKE_PACKAGES=images)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [d[3] for d in gcloud.find("artifacts", "packages", "delete")] == ["styleserve-cpu"]


def test_teardown_dry_run(gcloud):
    images = PACKAGES + "styleserve"
    result = gcloud.run("teardown.sh", "--dry-run", "--delete-images", FAKE_PACKAGES=images)
    assert result.returncode == 0, result.stderr
    assert gcloud.mutating() == []
    assert "+ gcloud run services delete styleserve" in result.stdout
    assert "+ gcloud artifacts packages delete styleserve --repository=styleserve" in result.stdout


def test_teardown_without_service_is_a_no_op(gcloud):
    result = gcloud.run("teardown.sh", FAKE_SERVICE_EXISTS="0")
    assert result.returncode == 0, result.stderr
    assert gcloud.mutating() == []
    assert "nothing to delete" in result.stderr


def test_teardown_without_project_fails_clearly(gcloud):
    result = gcloud.run("teardown.sh", FAKE_PROJECT="")
    assert result.returncode != 0
    assert "no Google Cloud project set" in result.stderr


# --- shellcheck ----------------------------------------------------------------------------


def test_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install -y shellcheck)")
    scripts = sorted(str(p) for p in INFRA.rglob("*.sh"))  # azure/ and aws/ too
    assert {"azure/deploy.sh", "aws/deploy.sh"} <= {
        str(Path(s).relative_to(INFRA)) for s in scripts
    }
    result = subprocess.run(
        ["shellcheck", "-x", *scripts], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- smoke_test.sh against local servers ---------------------------------------------------

# A functions-framework function honouring the API contract without stylizing: it returns the
# input in the requested format (or resized to OUT_SIZE, to play a broken service).
STANDIN = """
import base64, io
import flask
import functions_framework
from PIL import Image

OUT_SIZE = {out_size!r}
PROVIDER = {provider!r}
MIME = {{"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}}


def error(status, code, message):
    return flask.jsonify({{"error": {{"code": code, "message": message}}}}), status


@functions_framework.http
def stylize(request):
    auth = request.headers.get("Authorization")
    if auth is not None and auth != "Bearer {token}":
        return error(401, "unauthenticated", "bad token")
    if request.method == "GET" and request.path == "/healthz":
        return {{"status": "ok", "provider": PROVIDER, "styles": 1}}
    if request.method == "GET" and request.path == "/styles":
        return {{"default": "echo", "styles": ["echo"]}}
    if request.method != "POST" or request.path not in ("/", "/stylize"):
        return error(404, "not_found", request.path)
    kind = request.mimetype
    if kind == "multipart/form-data":
        data, fields = request.files["image"].read(), request.form
    elif kind == "application/json":
        fields = request.get_json()
        data = base64.b64decode(fields["image"])
    elif kind.startswith("image/"):
        data, fields = request.get_data(), request.args
    else:
        return error(415, "unsupported_media_type", kind)
    fmt = fields.get("format", "jpeg")
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:
        return error(400, "invalid_image", str(e))
    im = im.convert("RGB")
    if OUT_SIZE:
        im = im.resize(OUT_SIZE)
    buf = io.BytesIO()
    im.save(buf, fmt.upper())
    if kind == "application/json":
        return {{
            "image": base64.b64encode(buf.getvalue()).decode(),
            "format": fmt,
            "width": im.width,
            "height": im.height,
            "style": "echo",
            "timings_ms": {{"total": 0}},
        }}
    return flask.Response(buf.getvalue(), mimetype=MIME[fmt])
"""


def standin(tmp: Path, out_size, provider: str):
    tmp.mkdir()
    source = tmp / "main.py"
    source.write_text(STANDIN.format(out_size=out_size, provider=provider, token=TOKEN))
    return function_server(source, tmp / "server.log", cwd=source.parent)


@pytest.fixture(scope="module")
def good_url(tmp_path_factory):
    with standin(tmp_path_factory.mktemp("good") / "fn", None, "CUDAExecutionProvider") as url:
        yield url


@pytest.fixture(scope="module")
def wrong_url(tmp_path_factory):
    with standin(tmp_path_factory.mktemp("wrong") / "fn", (10, 10), "CPUExecutionProvider") as url:
        yield url


def smoke(url: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"
    return run_script("smoke_test.sh", url, *args, env=env, timeout=timeout)


def test_smoke_image_is_small_and_not_square():
    from PIL import Image

    with Image.open(INFRA / "smoke.jpg") as im:
        assert (im.format, im.size) == ("JPEG", (64, 48))


def test_smoke_passes_against_correct_server(good_url):
    result = smoke(good_url, "--expect-gpu")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Smoke test OK: all 7 checks passed" in result.stdout
    for check in ("GET /healthz", "POST / multipart", "POST / JSON", "POST / raw image/jpeg"):
        assert f"PASS  {check}" in result.stdout


def test_smoke_sends_token(good_url):
    assert smoke(good_url, "--token", TOKEN).returncode == 0
    result = smoke(good_url, "--token", "wrong")
    assert result.returncode == 1
    assert "HTTP 401" in result.stdout


def test_smoke_fails_against_wrong_image(wrong_url):
    result = smoke(wrong_url)
    assert result.returncode == 1
    assert "FAIL  POST / multipart: image is 10x10, expected 64x48" in result.stdout
    assert "FAIL  POST / JSON" in result.stdout
    assert "FAIL  POST / raw image/jpeg" in result.stdout
    assert "Smoke test FAILED" in result.stdout


def test_smoke_expect_gpu_rejects_cpu(wrong_url):
    result = smoke(wrong_url, "--expect-gpu")
    assert result.returncode == 1
    assert "expected CUDAExecutionProvider" in result.stdout


def test_smoke_unreachable_server_fails():
    result = smoke(f"http://127.0.0.1:{free_port()}", "--timeout", "5", timeout=60)
    assert result.returncode == 1
    assert "FAIL  GET /healthz: HTTP 000" in result.stdout


def test_deploy_smoke_flag_runs_smoke_test_with_token(gcloud, good_url):
    result = gcloud.run("deploy.sh", "--smoke", FAKE_URL=good_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Smoke test OK" in result.stdout
    assert gcloud.find("auth", "print-identity-token")


@pytest.mark.skipif(
    not (REPO / "function" / "main.py").exists(), reason="function/main.py not written yet"
)
def test_smoke_passes_against_real_function(tmp_path):
    env = {"REQUIRE_GPU": "0"}
    main = REPO / "function" / "main.py"
    with function_server(main, tmp_path / "server.log", env, 120, cwd=main.parent) as url:
        result = smoke(url)
    assert result.returncode == 0, result.stdout + result.stderr


def _dockerignored(dockerfile: str, path: str) -> bool:
    """Whether the file's .dockerignore (built from the repository root) excludes `path`."""
    import fnmatch

    rules = []
    for line in (INFRA / f"{dockerfile}.dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), line.lstrip("!")))
    verdict = False
    parts = path.split("/")
    for keep, pattern in rules:
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or pattern == "**":
            verdict = not keep
    return verdict


def _copies(dockerfile: str) -> list[list[str]]:
    return [
        line.split()[1:-1]
        for line in (INFRA / dockerfile).read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu", "Dockerfile.train"])
def test_dockerfile_copies_what_exists_and_is_not_ignored(dockerfile):
    """Every COPY source is in the repository and not excluded by the file's .dockerignore
    (built from the repository root), so a moved file fails here, not in Cloud Build."""
    copies = _copies(dockerfile)
    assert copies
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), f"{dockerfile}: COPY {source}: no such path"
            assert not _dockerignored(dockerfile, source.rstrip("/")), (
                f"{dockerfile}: COPY {source} is ignored"
            )


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_serving_images_ship_the_full_resolution_graphs(dockerfile):
    """The graphs every request runs (function/graphs/, not a models folder) are in the
    image: copied by a COPY and not excluded from the build context."""
    from stylefn.imaging.upsample import Upsampler

    for graph in Upsampler.paths():
        path = graph.relative_to(REPO).as_posix()
        assert graph.is_file() and not _dockerignored(dockerfile, path), path
        sources = [src.rstrip("/") for sources in _copies(dockerfile) for src in sources]
        assert any(path == src or path.startswith(src + "/") for src in sources), path
