"""infra/azure/deploy.sh and infra/aws/deploy.sh run for real against recording fakes of `az`,
`aws` and `docker` (as tests/test_infra.py does with gcloud): every command they would run is
logged, read-only look-ups are answered from the environment, and what a created resource
would answer afterwards is kept in a state file. Plus the Lambda size limit through the real
function: MAX_REQUEST_BYTES as the AWS script sets it gets the function's JSON 413."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devtools.server import function_server

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BASH = shutil.which("bash")
SUBSCRIPTION = "0123abcd-4567-89ef-0123-456789abcdef"
TENANT = "11111111-2222-3333-4444-555555555555"
APP_ID = "99999999-8888-7777-6666-555555555555"
ACCOUNT = "123456789012"
DIGEST = "sha256:" + "cd" * 32
FQDN = "styleserve.nicebeach-1234.swedencentral.azurecontainerapps.io"
LAMBDA_URL = "https://abc123.lambda-url.eu-west-1.on.aws/"
# Settings the scripts read from the environment; cleared so the caller's shell can't leak in.
SCRIPT_ENV = [
    "RESOURCE_GROUP", "LOCATION", "ACR_NAME", "ENVIRONMENT", "APP", "GPU_TYPE", "CPU_ONLY", "CPU",
    "MEMORY", "CONCURRENCY", "MIN_REPLICAS", "MAX_REPLICAS", "VIDEO_DEADLINE_S", "PUBLIC",
    "DEFAULT_STYLE", "FUNCTION_DIR", "IMAGE_TAG", "SMOKE", "TEARDOWN", "DRY_RUN", "FUNCTION",
    "AWS_REGION", "AWS_DEFAULT_REGION", "ECR_REPO", "MEMORY_MB", "TIMEOUT_S", "MAX_REQUEST_BYTES",
    "RETRY_DELAY_S",
]  # fmt: skip

# One fake for all three CLIs: argv[0]'s name says which. Answers from FAKE_* env vars; a
# resource named in FAKE_MISSING does not exist until the command that creates it has run.
FAKE_CLI = """#!{python}
import json, os, sys
from pathlib import Path

tool = Path(sys.argv[0]).name
args = sys.argv[1:]
env = os.environ
if tool == "aws" and args[:1] == ["--region"]:
    args = args[2:]
entry = {{"tool": tool, "argv": args}}
if tool == "az" and args[:2] == ["acr", "build"]:
    root = Path(args[-1])
    if root.is_dir():
        entry["context"] = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
if tool == "docker" and args[:1] == ["login"]:
    entry["stdin"] = sys.stdin.read()
with open(env["FAKE_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\\n")

state = Path(env["FAKE_LOG"] + ".created")
created = set(state.read_text().split()) if state.exists() else set()


def exists(name):
    return name not in env.get("FAKE_MISSING", "").split() or name in created


def create(name):
    state.write_text(" ".join(created | {{name}}))


def fail_first(kind):
    counter = Path(env["FAKE_LOG"] + "." + kind)
    done = int(counter.read_text()) if counter.exists() else 0
    if done < int(env.get("FAKE_" + kind + "_FAILURES", "0")):
        counter.write_text(str(done + 1))
        sys.exit("ERROR: (fake) refused: " + kind)


def query():
    return args[args.index("--query") + 1] if "--query" in args else ""


AZ_CREATES = {{("group", "create"): "group", ("acr", "create"): "acr", ("identity", "create"): "identity",
               ("ad", "app"): "adapp", ("containerapp", "create"): "app"}}
if tool == "az":
    if args[:2] == ["account", "show"]:
        if env.get("FAKE_LOGGED_OUT"):
            sys.exit("ERROR: Please run 'az login' to setup account.")
        print(env["FAKE_SUBSCRIPTION"] if query() == "id" else env["FAKE_TENANT"])
    elif args[:2] == ["account", "get-access-token"]:
        print("fake-az-token")
    elif args[:2] == ["provider", "show"]:
        print("NotRegistered" if not exists("providers") else "Registered")
    elif args[:2] == ["group", "exists"]:
        print("true" if exists("group") else "false")
    elif args[:2] == ["acr", "show"]:
        if not exists("acr"):
            sys.exit("ERROR: ResourceNotFound")
        print("/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/" + args[3])
    elif args[:3] == ["acr", "repository", "show"]:
        print(env["FAKE_DIGEST"])
    elif args[:3] == ["containerapp", "env", "show"]:
        if not exists("env"):
            sys.exit("ERROR: ResourceNotFound")
        print("/subscriptions/s/envs/" + args[4])
    elif args[:4] == ["containerapp", "env", "workload-profile", "list"]:
        print("Consumption")
        if exists("profile"):
            print("gpu-t4")
    elif args[:4] == ["containerapp", "env", "workload-profile", "add"]:
        create("profile")
    elif args[:3] == ["containerapp", "env", "create"]:
        create("env")
    elif args[:2] == ["identity", "show"]:
        if not exists("identity"):
            sys.exit("ERROR: ResourceNotFound")
        print("/subscriptions/s/identities/pull" if query() == "id" else "principal-123")
    elif args[:2] == ["containerapp", "show"]:
        if not exists("app"):
            sys.exit("ERROR: ResourceNotFound")
        print(env["FAKE_FQDN"] if "fqdn" in query() else "/subscriptions/s/apps/app")
    elif args[:3] == ["ad", "app", "list"]:
        if exists("adapp"):
            print(env["FAKE_APP_ID"])
    elif args[:3] == ["ad", "app", "create"]:
        create("adapp")
        print(env["FAKE_APP_ID"])
    elif args[:3] == ["role", "assignment", "create"]:
        fail_first("ROLE")
    elif (args[0], args[1]) in AZ_CREATES:
        create(AZ_CREATES[(args[0], args[1])])
elif tool == "aws":
    if args[:2] == ["configure", "get"]:
        if env.get("FAKE_AWS_REGION"):
            print(env["FAKE_AWS_REGION"])
        else:
            sys.exit(1)
    elif args[:2] == ["sts", "get-caller-identity"]:
        print(env["FAKE_ACCOUNT"])
    elif args[:2] == ["ecr", "describe-repositories"]:
        if not exists("repo"):
            sys.exit("An error occurred (RepositoryNotFoundException)")
    elif args[:2] == ["ecr", "create-repository"]:
        create("repo")
    elif args[:2] == ["ecr", "get-login-password"]:
        print("ecr-password")
    elif args[:2] == ["ecr", "describe-images"]:
        print(env["FAKE_DIGEST"])
    elif args[:2] == ["iam", "get-role"]:
        if not exists("role"):
            sys.exit("An error occurred (NoSuchEntity)")
        print("arn:aws:iam::" + env["FAKE_ACCOUNT"] + ":role/" + args[3])
    elif args[:2] == ["iam", "create-role"]:
        create("role")
    elif args[:2] == ["lambda", "get-function"]:
        if not exists("function"):
            sys.exit("An error occurred (ResourceNotFoundException)")
    elif args[:2] == ["lambda", "create-function"]:
        fail_first("CREATE")
        create("function")
    elif args[:2] == ["lambda", "get-function-url-config"]:
        if not exists("url"):
            sys.exit("An error occurred (ResourceNotFoundException)")
        print(env["FAKE_URL"])
    elif args[:2] == ["lambda", "create-function-url-config"]:
        create("url")
    elif args[:2] == ["lambda", "get-policy"]:
        if not env.get("FAKE_POLICY"):
            sys.exit("An error occurred (ResourceNotFoundException)")
        print(env["FAKE_POLICY"])
"""

READ_ONLY = {
    "az": [
        ["account"], ["provider", "show"], ["group", "exists"], ["acr", "show"],
        ["acr", "repository", "show"], ["containerapp", "env", "show"],
        ["containerapp", "env", "workload-profile", "list"], ["identity", "show"],
        ["containerapp", "show"], ["ad", "app", "list"],
    ],
    "aws": [
        ["configure", "get"], ["sts"], ["ecr", "describe-repositories"], ["ecr", "describe-images"],
        ["iam", "get-role"], ["lambda", "get-function"], ["lambda", "get-function-url-config"],
        ["lambda", "get-policy"], ["ecr", "get-login-password"],
    ],
    "docker": [],
}  # fmt: skip


class FakeClis:
    def __init__(self, tmp: Path):
        self.bin = tmp / "fakebin"
        self.bin.mkdir()
        for tool in ("az", "aws", "docker"):
            path = self.bin / tool
            path.write_text(FAKE_CLI.format(python=sys.executable))
            path.chmod(0o755)
        sleep = self.bin / "sleep"
        sleep.write_text(f'#!/bin/sh\necho "$1" >> "{tmp / "sleep.log"}"\n')
        sleep.chmod(0o755)
        self.sleeps = tmp / "sleep.log"
        self.log = tmp / "fake.log"
        self.log.touch()
        self.env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
        self.env.update(
            PATH=f"{self.bin}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
            FAKE_LOG=str(self.log),
            FAKE_SUBSCRIPTION=SUBSCRIPTION,
            FAKE_TENANT=TENANT,
            FAKE_APP_ID=APP_ID,
            FAKE_DIGEST=DIGEST,
            FAKE_FQDN=FQDN,
            FAKE_ACCOUNT=ACCOUNT,
            FAKE_AWS_REGION="eu-west-1",
            FAKE_URL=LAMBDA_URL,
            IMAGE_TAG="t1",
        )

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [BASH, str(REPO / "infra" / script), *args],
            cwd=REPO,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def reset(self) -> None:
        """Forget the calls, what they created and the refusals counted, for another run."""
        for path in self.log.parent.glob(self.log.name + ".*"):
            path.unlink()
        self.log.write_text("")

    def entries(self, tool: str) -> list[dict]:
        lines = self.log.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["tool"] == tool]

    def calls(self, tool: str) -> list[list[str]]:
        return [e["argv"] for e in self.entries(tool)]

    def find(self, tool: str, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls(tool) if c[: len(prefix)] == list(prefix)]

    def mutating(self, tool: str) -> list[list[str]]:
        return [c for c in self.calls(tool) if not any(c[: len(p)] == p for p in READ_ONLY[tool])]


@pytest.fixture
def fake(tmp_path) -> FakeClis:
    return FakeClis(tmp_path)


def opt(argv: list[str], name: str) -> str | None:
    """Value of `name value` or `name=value` in argv."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def values(argv: list[str], name: str) -> list[str]:
    """The space-separated values after `name` (az's nargs='+' flags)."""
    start = argv.index(name) + 1
    end = next((i for i in range(start, len(argv)) if argv[i].startswith("--")), len(argv))
    return argv[start:end]


# --- Azure Container Apps ------------------------------------------------------------------

AZ_ALL_MISSING = "group acr env profile identity app adapp providers"


def test_azure_fresh_subscription_creates_everything_in_order(fake):
    result = fake.run("azure/deploy.sh", FAKE_MISSING=AZ_ALL_MISSING, FAKE_ROLE_FAILURES="1")
    assert result.returncode == 0, result.stderr
    kinds = [
        c[:3] if c[0] in ("containerapp", "ad", "role") else c[:2] for c in fake.mutating("az")
    ]
    assert kinds == [
        ["provider", "register"],
        ["provider", "register"],
        ["provider", "register"],
        ["group", "create"],
        ["acr", "create"],
        ["acr", "build"],
        ["containerapp", "env", "create"],
        ["containerapp", "env", "workload-profile"],
        ["identity", "create"],
        ["role", "assignment", "create"],  # refused once (propagation), then retried
        ["role", "assignment", "create"],
        ["containerapp", "create", "--name"],
        ["ad", "app", "create"],
        ["ad", "app", "update"],
        ["containerapp", "auth", "microsoft"],
        ["containerapp", "auth", "update"],
    ]
    assert fake.sleeps.read_text().split() == ["5"]
    acr = "styleserve0123abcd"  # the default: from the subscription id
    (create_acr,) = fake.find("az", "acr", "create")
    assert (opt(create_acr, "--name"), opt(create_acr, "--sku")) == (acr, "Basic")
    assert opt(create_acr, "--location") == "swedencentral"
    (build,) = [e for e in fake.entries("az") if e["argv"][:2] == ["acr", "build"]]
    assert opt(build["argv"], "--image") == "styleserve:t1"
    assert {"Dockerfile", "function/main.py"} <= set(build["context"])
    assert not any("__pycache__" in f for f in build["context"])
    (profile,) = fake.find("az", "containerapp", "env", "workload-profile", "add")
    assert opt(profile, "--workload-profile-type") == "Consumption-GPU-NC8as-T4"
    assert opt(profile, "--workload-profile-name") == "gpu-t4"
    (grant,) = {tuple(c) for c in fake.find("az", "role", "assignment", "create")}
    assert opt(list(grant), "--role") == "AcrPull"
    assert opt(list(grant), "--assignee-object-id") == "principal-123"
    assert opt(list(grant), "--scope").endswith("/registries/" + acr)

    (app,) = fake.find("az", "containerapp", "create")
    assert opt(app, "--name") == "styleserve"
    assert opt(app, "--image") == f"{acr}.azurecr.io/styleserve@{DIGEST}"
    assert opt(app, "--workload-profile-name") == "gpu-t4"
    assert (
        opt(app, "--registry-identity")
        == opt(app, "--user-assigned")
        == "/subscriptions/s/identities/pull"
    )
    assert (opt(app, "--ingress"), opt(app, "--target-port")) == ("external", "8080")
    assert (opt(app, "--cpu"), opt(app, "--memory")) == ("8", "56Gi")
    assert (opt(app, "--min-replicas"), opt(app, "--max-replicas")) == ("0", "1")
    assert opt(app, "--scale-rule-type") == "http"
    assert opt(app, "--scale-rule-http-concurrency") == "4"
    env_vars = dict(kv.split("=", 1) for kv in values(app, "--env-vars"))
    assert env_vars == {"THREADS": "4", "VIDEO_DEADLINE_S": "200", "REQUIRE_GPU": "1"}
    # The function gives up on a video before Container Apps' 240 s ingress timeout.
    assert int(env_vars["VIDEO_DEADLINE_S"]) < 240

    (entra,) = fake.find("az", "containerapp", "auth", "microsoft", "update")
    assert (opt(entra, "--client-id"), opt(entra, "--tenant-id")) == (APP_ID, TENANT)
    assert opt(entra, "--allowed-audiences") == f"api://{APP_ID}"
    (auth,) = fake.find("az", "containerapp", "auth", "update")
    assert opt(auth, "--unauthenticated-client-action") == "Return401"
    (register,) = fake.find("az", "ad", "app", "create")
    assert opt(register, "--sign-in-audience") == "AzureADMyOrg"

    out = result.stdout
    assert f"App URL: https://{FQDN}" in out
    token = f"az account get-access-token --resource api://{APP_ID} --query accessToken -o tsv"
    assert f'-H "Authorization: Bearer $({token})"' in out
    assert "up to ~5 minutes" in out


def test_azure_existing_app_is_updated_not_recreated(fake):
    result = fake.run("azure/deploy.sh", "--max-replicas", "2", "--env", "MAX_PIXELS=12000000")
    assert result.returncode == 0, result.stderr
    assert not fake.find("az", "containerapp", "create")
    assert not fake.find("az", "ad", "app", "create")
    assert not fake.find("az", "containerapp", "env", "workload-profile", "add")
    (update,) = fake.find("az", "containerapp", "update")
    assert opt(update, "--image").endswith(f"/styleserve@{DIGEST}")
    assert opt(update, "--max-replicas") == "2"
    assert "MAX_PIXELS=12000000" in values(update, "--set-env-vars")


def test_azure_a100_cpu_only_and_public(fake):
    assert (
        fake.run("azure/deploy.sh", "--gpu-type", "a100", FAKE_MISSING="app profile").returncode
        == 0
    )
    (profile,) = fake.find("az", "containerapp", "env", "workload-profile", "add")
    assert opt(profile, "--workload-profile-type") == "Consumption-GPU-NC24-A100"
    (app,) = fake.find("az", "containerapp", "create")
    assert (opt(app, "--cpu"), opt(app, "--memory")) == ("24", "220Gi")

    fake.reset()
    result = fake.run("azure/deploy.sh", "--cpu-only", "--public", FAKE_MISSING="app")
    assert result.returncode == 0, result.stderr
    assert not fake.find("az", "containerapp", "env", "workload-profile")
    (build,) = [e for e in fake.entries("az") if e["argv"][:2] == ["acr", "build"]]
    assert opt(build["argv"], "--image") == "styleserve-cpu:t1"
    (app,) = fake.find("az", "containerapp", "create")
    assert opt(app, "--workload-profile-name") == "Consumption"
    assert (opt(app, "--cpu"), opt(app, "--memory")) == ("2", "4Gi")
    assert "DEFAULT_ARCH=fast" in values(app, "--env-vars")
    assert not fake.find("az", "containerapp", "auth")
    assert "Authorization" not in result.stdout


def test_azure_dry_run_changes_nothing(fake):
    result = fake.run("azure/deploy.sh", "--dry-run", "--smoke", FAKE_MISSING=AZ_ALL_MISSING)
    assert result.returncode == 0, result.stderr
    assert fake.mutating("az") == []
    assert not fake.sleeps.exists()
    out = result.stdout + result.stderr
    for line in (
        "+ az group create --name styleserve --location swedencentral",
        "+ az acr build --registry styleserve0123abcd --image styleserve:t1",
        "+ az containerapp env workload-profile add --name styleserve-env",
        "--workload-profile-type Consumption-GPU-NC8as-T4",
        "+ az role assignment create --assignee-object-id PRINCIPAL_ID",
        "+ az containerapp create --name styleserve",
        "+ az ad app create --display-name styleserve --sign-in-audience AzureADMyOrg",
        "--unauthenticated-client-action Return401",
        "smoke_test.sh https://APP-FQDN --timeout 360 --expect-gpu --token",
    ):
        assert line in out, line


def test_azure_teardown_deletes_the_group_and_the_registration(fake):
    result = fake.run("azure/deploy.sh", "--teardown")
    assert result.returncode == 0, result.stderr
    assert fake.mutating("az") == [
        ["group", "delete", "--name", "styleserve", "--yes", "--no-wait"],
        ["ad", "app", "delete", "--id", APP_ID],
    ]
    fake.reset()
    assert fake.run("azure/deploy.sh", "--teardown", "--dry-run").returncode == 0
    assert fake.mutating("az") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--video-deadline", "240"], "under Container Apps' 240 s request timeout"),
        (["--gpu-type", "h100"], "--gpu-type must be t4 or a100"),
        (["--min-replicas", "3"], "exceeds MAX_REPLICAS"),
        (["--acr", "no-dashes"], "--acr wants 5-50 letters and digits"),
        (["--bogus"], "unknown argument"),
    ],
)
def test_azure_rejects_bad_settings_before_touching_anything(fake, args, message):
    result = fake.run("azure/deploy.sh", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert fake.mutating("az") == []


def test_azure_needs_a_login(fake):
    result = fake.run("azure/deploy.sh", FAKE_LOGGED_OUT="1")
    assert result.returncode != 0
    assert "az login" in result.stderr


# --- AWS Lambda ----------------------------------------------------------------------------

# Lambda's synchronous payload limit, and base64's 4 bytes for every 3.
LAMBDA_PAYLOAD = 6 * 1024 * 1024
LAMBDA_MAX_BODY = 4669440  # what infra/aws/deploy.sh gives the function


def lambda_env(create: list[str]) -> dict[str, str]:
    return json.loads(opt(create, "--environment"))["Variables"]


def test_aws_fresh_account_builds_pushes_and_creates_an_iam_url(fake):
    missing = "repo role function url"
    result = fake.run("aws/deploy.sh", FAKE_MISSING=missing, FAKE_CREATE_FAILURES="1")
    assert result.returncode == 0, result.stderr
    registry = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
    base_build, lambda_build = fake.find("docker", "buildx", "build")
    for build in (base_build, lambda_build):
        assert "--provenance=false" in build
        assert opt(build, "--platform") == "linux/amd64"
        assert opt(build, "--builder") == "default"
    assert opt(base_build, "-f") == str(REPO / "infra" / "Dockerfile.cpu")
    assert opt(lambda_build, "-f") == str(REPO / "infra" / "aws" / "Dockerfile.lambda")
    assert opt(lambda_build, "--build-arg") == "BASE_IMAGE=" + opt(base_build, "-t")
    assert opt(lambda_build, "-t") == f"{registry}/styleserve:t1"
    (login,) = [e for e in fake.entries("docker") if e["argv"][:1] == ["login"]]
    assert login["argv"][-1] == registry and login["stdin"].strip() == "ecr-password"
    assert fake.find("docker", "push") == [["push", f"{registry}/styleserve:t1"]]

    kinds = [c[:2] for c in fake.mutating("aws")]
    assert kinds == [
        ["ecr", "create-repository"],
        ["iam", "create-role"],
        ["iam", "attach-role-policy"],
        ["lambda", "create-function"],  # refused once: the new role had not propagated
        ["lambda", "create-function"],
        ["lambda", "wait"],
        ["lambda", "create-function-url-config"],
    ]
    (role,) = fake.find("aws", "iam", "create-role")
    trust = json.loads(opt(role, "--assume-role-policy-document"))
    assert trust["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    (policy,) = fake.find("aws", "iam", "attach-role-policy")
    assert opt(policy, "--policy-arn").endswith("service-role/AWSLambdaBasicExecutionRole")
    create = fake.find("aws", "lambda", "create-function")[-1]
    assert opt(create, "--package-type") == "Image"
    assert opt(create, "--code") == f"ImageUri={registry}/styleserve@{DIGEST}"
    assert opt(create, "--role") == f"arn:aws:iam::{ACCOUNT}:role/styleserve-role"
    assert (opt(create, "--memory-size"), opt(create, "--timeout")) == ("4096", "300")
    assert lambda_env(create) == {
        "MAX_REQUEST_BYTES": str(LAMBDA_MAX_BODY),
        "DEFAULT_ARCH": "fast",
        "THREADS": "4",
        "AWS_LWA_INVOKE_MODE": "response_stream",
    }
    (url,) = fake.find("aws", "lambda", "create-function-url-config")
    assert (opt(url, "--auth-type"), opt(url, "--invoke-mode")) == ("AWS_IAM", "RESPONSE_STREAM")
    assert not fake.find("aws", "lambda", "add-permission")
    assert fake.sleeps.read_text().split() == ["5"]
    out = result.stdout
    assert f"Function URL: {LAMBDA_URL.rstrip('/')}" in out
    assert '--aws-sigv4 "aws:amz:eu-west-1:lambda"' in out


def test_aws_max_request_bytes_fits_lambdas_payload_after_base64(fake):
    """The largest body the function accepts still fits Lambda's 6 MB once base64-encoded,
    with room for the function URL's event around it; a few KB more would not."""
    encoded = len(base64.b64encode(b"\0" * LAMBDA_MAX_BODY))
    assert encoded + 60_000 < LAMBDA_PAYLOAD
    assert len(base64.b64encode(b"\0" * (LAMBDA_MAX_BODY + 60_000))) > LAMBDA_PAYLOAD - 16_000
    result = fake.run("aws/deploy.sh", "--max-request-bytes", str(LAMBDA_MAX_BODY + 1))
    assert result.returncode != 0
    assert f"may be at most {LAMBDA_MAX_BODY}" in result.stderr
    result = fake.run("aws/deploy.sh", "--env", "MAX_REQUEST_BYTES=9999999")
    assert result.returncode != 0
    assert fake.mutating("aws") == [] and fake.calls("docker") == []


def test_aws_public_url_grants_both_invoke_actions(fake):
    result = fake.run(
        "aws/deploy.sh", "--public", "--smoke", "--dry-run", FAKE_MISSING="url function"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "--auth-type NONE --invoke-mode RESPONSE_STREAM" in out
    assert (
        "lambda add-permission --function-name styleserve --statement-id FunctionURLAllowPublicAccess "
        "--action lambda:InvokeFunctionUrl --principal '*' --function-url-auth-type NONE" in out
    )
    assert (
        "--statement-id FunctionURLAllowInvokeAction --action lambda:InvokeFunction "
        "--principal '*' --invoked-via-function-url" in out
    )
    assert "smoke_test.sh https://FUNCTION-URL.lambda-url.eu-west-1.on.aws" in out
    assert fake.mutating("aws") == [] and fake.calls("docker") == []


def test_aws_existing_function_is_updated_and_its_policy_kept(fake):
    policy = json.dumps(
        {
            "Statement": [
                {"Sid": "FunctionURLAllowPublicAccess"},
                {"Sid": "FunctionURLAllowInvokeAction"},
            ]
        }
    )
    result = fake.run("aws/deploy.sh", "--public", "--memory-mb", "8192", FAKE_POLICY=policy)
    assert result.returncode == 0, result.stderr
    assert not fake.find("aws", "lambda", "create-function")
    (code,) = fake.find("aws", "lambda", "update-function-code")
    assert opt(code, "--image-uri").endswith(f"/styleserve@{DIGEST}")
    (config,) = fake.find("aws", "lambda", "update-function-configuration")
    assert opt(config, "--memory-size") == "8192"
    (url,) = fake.find("aws", "lambda", "update-function-url-config")
    assert opt(url, "--auth-type") == "NONE"
    assert not fake.find("aws", "lambda", "add-permission")


def test_aws_teardown(fake):
    result = fake.run("aws/deploy.sh", "--teardown")
    assert result.returncode == 0, result.stderr
    assert [c[:2] for c in fake.mutating("aws")] == [
        ["lambda", "delete-function"],
        ["iam", "detach-role-policy"],
        ["iam", "delete-role"],
        ["ecr", "delete-repository"],
    ]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--timeout", "901"], {}, "--timeout must be 1..900"),
        (["--memory-mb", "64"], {}, "--memory-mb must be 128..10240"),
        (["--smoke"], {}, "--smoke needs --public"),
        (["--env", 'A="x"'], {}, "without '\"'"),
        ([], {"FAKE_AWS_REGION": ""}, "no AWS region set"),
    ],
)
def test_aws_rejects_bad_settings_before_touching_anything(fake, args, env, message):
    result = fake.run("aws/deploy.sh", *args, **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert fake.mutating("aws") == [] and fake.calls("docker") == []


def test_lambda_dockerfile_adds_the_web_adapter_to_the_cpu_image():
    text = (REPO / "infra" / "aws" / "Dockerfile.lambda").read_text()
    assert "FROM public.ecr.aws/awsguru/aws-lambda-adapter:0.9.1 AS adapter" in text
    assert "COPY --from=adapter /lambda-adapter /opt/extensions/lambda-adapter" in text
    assert "FROM ${BASE_IMAGE}" in text
    assert "AWS_LWA_READINESS_CHECK_PATH=/healthz" in text
    assert "AWS_LWA_PORT=8080" in text


@pytest.mark.parametrize("script", ["azure/deploy.sh", "aws/deploy.sh"])
def test_cloud_scripts_help(fake, script):
    result = fake.run(script, "--help")
    assert result.returncode == 0
    assert f"Usage: infra/{script}" in result.stdout
    assert "--dry-run" in result.stdout and "--teardown" in result.stdout
    assert ("240 s" if script.startswith("azure") else "6 MB") in result.stdout


@pytest.mark.parametrize(("script", "tool"), [("azure/deploy.sh", "az"), ("aws/deploy.sh", "aws")])
def test_missing_cli_fails_clearly(tmp_path, script, tool):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "dirname", "date", "cat"):
        if found := shutil.which(name):
            (bin_dir / name).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k not in SCRIPT_ENV}
    env["PATH"] = str(bin_dir)
    result = subprocess.run([BASH, str(REPO / "infra" / script)], env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert f"{tool} not found on PATH" in result.stderr


# --- the Lambda limit through the real function --------------------------------------------


def test_function_answers_its_json_413_above_the_lambda_limit(tmp_path):
    """With MAX_REQUEST_BYTES as infra/aws/deploy.sh sets it, a body one byte over gets the
    function's JSON 413 (what a client sees for JSON bodies up to 6 MB and binary ones up to
    the base64 limit), and one at the limit is read (and refused only as no image)."""
    main = REPO / "function" / "main.py"
    env = {"MAX_REQUEST_BYTES": str(LAMBDA_MAX_BODY), "REQUIRE_GPU": "0"}
    with function_server(main, tmp_path / "server.log", env, 120, cwd=main.parent) as url:
        over = requests.post(url + "/", data=b"\0" * (LAMBDA_MAX_BODY + 1),
                             headers={"Content-Type": "image/jpeg"}, timeout=60)  # fmt: skip
        assert over.status_code == 413
        assert over.json()["error"]["code"] == "payload_too_large"
        at = requests.post(url + "/", data=b"\0" * LAMBDA_MAX_BODY,
                           headers={"Content-Type": "image/jpeg"}, timeout=60)  # fmt: skip
        assert at.status_code == 400, at.text
