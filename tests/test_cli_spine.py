"""The CLI spine: --version, list, doctor, and the one-line exit-2 convention for user errors."""

import subprocess
import sys

import idcbench


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "idcbench", *args], capture_output=True, text=True, timeout=300)


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"idcbench {idcbench.__version__}"


def test_list_models_datasets_metrics():
    out = run_cli("list", "datasets")
    assert out.returncode == 0, out.stderr
    for name in ("clevr-change", "spot-the-diff", "ier", "shapes"):
        assert name in out.stdout
    out = run_cli("list", "metrics")
    assert out.returncode == 0 and "CIDEr-D" in out.stdout and "METEOR" in out.stdout


def test_user_error_is_one_line_exit_2():
    out = run_cli("list", "widgets")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "Traceback" not in out.stderr
    assert "cannot list 'widgets'" in out.stderr


def test_unknown_command_exit_2_without_traceback():
    out = run_cli("frobnicate")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_doctor_reports_java_and_spice():
    out = run_cli("doctor")
    assert out.returncode == 0, out.stderr
    assert "java" in out.stdout and "SPICE" in out.stdout
