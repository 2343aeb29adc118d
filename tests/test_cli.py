"""The facetrack command: subcommand dispatch, --help, --version, and one module per command."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracker import __version__
from tracker.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / "tracker" / "cli"


def test_help_lists_every_command_in_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: facetrack")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS)
    assert set(COMMANDS) == {p.stem for p in CLI.glob("*.py")} - {"__init__", "__main__", "common"}


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"facetrack {__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_and_version(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: facetrack {command}")
    with pytest.raises(SystemExit) as exit_:
        main([command, "--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"facetrack {__version__}"


@pytest.mark.parametrize("argv,message", [
    (["trak", "x.mp4"], "facetrack: error: unknown command 'trak' (did you mean 'track'?)"),
    (["frobnicate"], "facetrack: error: unknown command 'frobnicate'; commands: track, batch, predict,"),
])
def test_unknown_command_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(message)


def test_no_command_prints_usage_and_exit_2(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: facetrack")


def test_help_for_a_command(capsys):
    with pytest.raises(SystemExit):
        main(["help", "evaluate"])
    assert capsys.readouterr().out.startswith("usage: facetrack evaluate")


def test_no_command_module_imports_another():
    """Each command reads only the shared module (common) and the library."""
    for path in CLI.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                assert all(n in ("common", None) for n in names) or path.stem in ("__main__",), (path.name, names)


def test_the_installed_script_and_the_launcher():
    script = Path(sys.executable).parent / "facetrack"
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (package not installed in this environment)")
    for argv in ([str(script), "--version"], [str(REPO / "bin" / "facetrack"), "--version"],
                 [sys.executable, "-m", "tracker.cli", "--version"]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ})
        assert proc.returncode == 0 and proc.stdout.strip() == f"facetrack {__version__}", (argv, proc.stderr)
    proc = subprocess.run([str(script), "track", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--no-temporal" in proc.stdout


def test_a_bug_is_one_line_and_exit_1_with_the_traceback_on_request(capsys, monkeypatch):
    from tracker.cli.common import run_command

    def broken(argv, prog):
        raise AttributeError("'numpy.ndarray' object\nhas no attribute 'float'")
    assert run_command("facetrack x", broken, []) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("facetrack x: error: internal error (AttributeError: 'numpy.ndarray' object has no"), err
    monkeypatch.setenv("FACETRACK_DEBUG", "1")
    with pytest.raises(AttributeError):
        run_command("facetrack x", broken, [])


def test_a_command_under_its_old_name_says_what_replaced_it(capsys):
    assert main(["refine", "--config", "configs/regressors-default.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "facetrack: error: 'refine' was renamed: did you mean 'facetrack fit'?"


@pytest.mark.parametrize("command", ["track", "predict"])
def test_an_option_under_its_old_name_says_what_replaced_it(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "x.mp4", "--csv", "x.csv", "--no-refine"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith("error: --no-refine was renamed: did you mean --no-regressors and/or --no-box-refinement?")
