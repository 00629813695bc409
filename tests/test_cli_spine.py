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


def test_doctor_java_check_on_a_java_that_does_not_run(tmp_path, monkeypatch):
    import os

    from idcbench import doctor
    from idcbench.metrics import _java

    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'Error: could not find libjava.so' >&2\nexit 1\n")  # a broken install
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    _java.java_version_text.cache_clear()
    try:
        check = doctor.java_check()
        assert not check.ok and str(fake) in check.detail and "reinstall" in check.detail
        assert _java.java_major_version(str(fake)) is None
    finally:
        _java.java_version_text.cache_clear()
