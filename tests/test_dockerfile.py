"""The image's properties, read from the Dockerfile, .dockerignore and
compose.yaml (no Docker engine runs where the tests do): a multi-stage build
on a pinned slim Python, a non-root user, nothing to build with or cached in
the final image, a health check, `soars serve` by default; compose starts
PostgreSQL 15, migrates first, and gives the service only the runtime login."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

#: Programs that build native code; none of them may be in the final image.
BUILD_TOOLS = ("gcc", "g++", "clang", "make", "build-essential", "cc", "libpq-dev")


@dataclass
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        value: list[str] = json.loads(self.arguments)
        return value


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.arguments):
                name, _, value = pair.partition("=")
                found[name] = value
        return found


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""

    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], parts[0])
            alias = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, alias))
        else:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse((REPO / "Dockerfile").read_text(encoding="utf-8"))[1]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_it_builds_in_one_stage_and_runs_from_another(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    build_names = {stage.name for stage in stages[:-1]}
    copies = [i.arguments for i in stages[-1].all("COPY")]
    assert any(
        re.match(rf"--from=({'|'.join(n for n in build_names if n)})\b", c)
        for c in copies
    ), copies


def test_every_stage_starts_from_a_slim_python_pinned_to_a_patch_release(
    stages: list[Stage],
) -> None:
    for stage in stages:
        assert re.fullmatch(
            r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", stage.base
        ), stage.base


def test_the_final_image_runs_as_a_user_that_is_not_root(final: Stage) -> None:
    users = final.all("USER")

    assert users, "no USER in the final stage"
    user = users[-1].arguments.split(":")[0]
    assert user not in ("root", "0")
    # Nothing after the switch runs as root again.
    index = final.instructions.index(users[-1])
    assert not [i for i in final.instructions[index:] if i.keyword == "RUN"]


def test_the_service_cannot_write_its_own_code(final: Stage) -> None:
    for copy in final.all("COPY"):
        assert "--chown" not in copy.arguments, copy.arguments


@pytest.mark.parametrize("tool", BUILD_TOOLS)
def test_the_final_image_installs_no_build_tool(final: Stage, tool: str) -> None:
    for run in final.all("RUN"):
        words = re.split(r"[\s;&|]+", run.arguments)
        assert tool not in words, run.arguments


def test_the_final_image_runs_no_package_manager(final: Stage) -> None:
    # apt or pip in the final stage would leave lists or caches behind; the
    # environment is built in the other stage and copied whole.
    for run in final.all("RUN"):
        assert not re.search(r"\b(apt-get|apt|pip|pip3|uv)\b", run.arguments), (
            run.arguments
        )


def test_the_build_stage_keeps_no_pip_cache(stages: list[Stage]) -> None:
    for stage in stages[:-1]:
        for run in stage.all("RUN"):
            if re.search(r"\bpip\b.*\binstall\b", run.arguments):
                no_cache = "--no-cache-dir" in run.arguments
                assert no_cache or stage.env().get("PIP_NO_CACHE_DIR") == "1"


def test_the_build_copies_every_package_the_project_ships(stages: list[Stage]) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = set(pyproject["tool"]["setuptools"]["packages"])
    copied = {
        shlex.split(i.arguments)[0].rstrip("/")
        for stage in stages[:-1]
        for i in stage.all("COPY")
        if not i.arguments.startswith("--")
    }

    assert packages - copied == set()
    assert {path for path in copied if not (REPO / path).exists()} == set()


def test_a_health_check_asks_the_service_itself(final: Stage) -> None:
    [check] = final.all("HEALTHCHECK")

    command = check.arguments.split("CMD", 1)[1].strip()
    assert json.loads(command) == ["soars", "health"]
    assert re.search(r"--timeout=\d+s", check.arguments)


def test_soars_is_the_entry_point_and_serve_the_default(final: Stage) -> None:
    assert final.all("ENTRYPOINT")[-1].exec_form() == ["soars"]
    assert final.all("CMD")[-1].exec_form() == ["serve"]


def test_the_image_defaults_to_production_on_the_port_it_exposes(final: Stage) -> None:
    env = final.env()

    assert env["SOARS_MODE"] == "production"
    assert [i.arguments for i in final.all("EXPOSE")] == [env["SOARS_PORT"]]


# -- .dockerignore ----------------------------------------------------------


def _ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return any(
        fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/")
        for pattern in patterns
    )


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        ".git/config",
        ".venv/bin/python",
        ".soars/secret-key",
        "tests/conftest.py",
        "signing.pem",
        "secrets/audit-signing-key.pem",
    ],
)
def test_secrets_and_local_state_stay_out_of_the_build_context(path: str) -> None:
    assert _ignored(path)


@pytest.mark.parametrize("path", ["pyproject.toml", "soars/cli.py", "db/migrations"])
def test_what_the_build_needs_is_in_the_context(path: str) -> None:
    assert not _ignored(path)


# -- compose.yaml -----------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:  # type: ignore[type-arg]
    loaded: dict = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))  # type: ignore[type-arg]
    return loaded


def test_compose_runs_postgresql_15_pinned(compose: dict) -> None:  # type: ignore[type-arg]
    image = compose["services"]["postgres"]["image"]

    assert re.fullmatch(r"postgres:15\.\d+(-[a-z]+)?", image), image
    assert "healthcheck" in compose["services"]["postgres"]


def test_compose_migrates_once_before_the_service_starts(compose: dict) -> None:  # type: ignore[type-arg]
    services = compose["services"]

    assert services["migrate"]["command"] == ["db", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["soars"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["migrate"]["depends_on"]["postgres"] == {
        "condition": "service_healthy"
    }


def test_compose_gives_the_service_only_the_runtime_login(compose: dict) -> None:  # type: ignore[type-arg]
    service = compose["services"]["soars"]["environment"]
    migrate = compose["services"]["migrate"]["environment"]

    assert "SOARS_DATABASE_URL" not in service
    assert service["POSTGRES_PASSWORD"] == ""  # .env's, blanked for the service
    assert service["SOARS_RUNTIME_DATABASE_URL"].startswith("postgresql://soars_app:")
    assert "SOARS_DATABASE_URL" in migrate


def test_compose_publishes_the_port_on_loopback_only(compose: dict) -> None:  # type: ignore[type-arg]
    assert compose["services"]["soars"]["ports"] == ["127.0.0.1:8000:8000"]


def test_compose_hands_the_service_its_audit_signing_key_as_a_secret(
    compose: dict,  # type: ignore[type-arg]
) -> None:
    assert compose["services"]["soars"]["secrets"] == ["audit_signing_key"]
    assert "file" in compose["secrets"]["audit_signing_key"]
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    assert "SOARS_AUDIT_SIGNING_KEY=/run/secrets/audit_signing_key" in example
