"""The command line as a user runs it: real processes, exit codes, one line per problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from mm_daemon import __version__
from mm_daemon.cli import config_json_schema

REPO = Path(__file__).resolve().parents[2]
DEFAULT = REPO / "config" / "default.yaml"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mm_daemon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=REPO,
    )


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_version_prints_the_package_version() -> None:
    result = _cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"mm-daemon {__version__}"


def test_check_config_accepts_the_default_with_one_summary_line() -> None:
    result = _cli("check-config", str(DEFAULT))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ok: paper mode, 2 markets: BTC/USDT on sim-spot")


def test_check_config_reports_each_problem_on_its_own_line_and_exits_2(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT.read_text())
    data["quoting"] = {"levels": 0, "colour": "blue"}
    result = _cli("check-config", str(_write(tmp_path, data)))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "quoting.levels: Input should be greater than or equal to 1",
        "quoting.colour: unknown key (check its spelling against config/schema.json)",
    ]
    assert "Traceback" not in result.stderr


def test_check_config_on_bad_yaml_names_the_line_without_traceback(tmp_path: Path) -> None:
    path = _write(tmp_path, "mode: paper\nvenues: {maker: [\n")
    result = _cli("check-config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}:")
    assert "invalid YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_in_yaml_exits_2_without_echoing_it(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT.read_text())
    data["venues"]["sim-spot"]["api_secret"] = "hunter2-hunter2"
    result = _cli("check-config", str(_write(tmp_path, data)))
    assert result.returncode == 2
    assert "MMD_VENUES__SIM_SPOT__API_SECRET" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_secret_from_environment_never_printed_by_check_config() -> None:
    env = {"PATH": "/usr/bin:/bin", "MMD_VENUES__SIM_SPOT__API_SECRET": "topsecret-value-9"}
    result = _cli("check-config", str(DEFAULT), env=env)
    assert result.returncode == 0, result.stderr
    assert "topsecret-value-9" not in result.stdout + result.stderr


def test_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    result = _cli("run", "--config", str(_write(tmp_path, "mode: sideways\n")))
    assert result.returncode == 2
    assert result.stderr.startswith("mode: Input should be 'paper' or 'live'")


def test_unknown_command_exits_2() -> None:
    assert _cli("dance").returncode == 2


def test_schema_is_printed_and_matches_the_shipped_file() -> None:
    result = _cli("schema")
    assert result.returncode == 0
    printed = json.loads(result.stdout)
    shipped = json.loads((REPO / "config" / "schema.json").read_text())
    assert printed == shipped == config_json_schema()
    assert "venues" in printed["required"]


def test_shipped_yaml_files_reference_the_schema() -> None:
    for path in sorted((REPO / "config").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=schema.json", path
