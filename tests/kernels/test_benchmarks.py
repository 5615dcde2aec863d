"""The GPU benchmark and check scripts run end to end (--dry-run: tiny shapes on CPU, Triton
interpreter), and say so when something failed: a non-zero exit, the failed stage or check named,
no target met by a wrong output."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_prints_and_writes_every_implementation(tmp_path):
    out = tmp_path / "rows.json"
    command = [sys.executable, str(REPO / "tools" / "bench_attention.py"), "--dry-run",
               "--masks", "M5,M10", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "matmul peak" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    names = {(r["mask"], r["implementation"]) for r in rows}
    expected = {("M5", "ours (triton)"), ("M5", "sdpa mask"), ("M5", "flex (eager)"),
                ("M10", "ours (triton)"), ("M10", "sdpa is_causal")}  # fmt: skip
    assert expected <= names
    assert ("M5", "sdpa is_causal") not in names  # VAR is not plain causal
    for row in rows:
        assert row["max_abs_error"] < 1e-4 and row["rel_error"] < 1e-4 and row["ok"], row


def test_bench_train_dry_run_times_each_variant():
    command = [sys.executable, str(REPO / "tools" / "bench_train.py"), "--dry-run",
               "--variants", "eager-sdpa,eager-triton,eager-flex,fp32-eager-sdpa"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    # FlexAttention has no backward on CPU: the variant is reported as failed, not dropped,
    # and the run exits 1
    assert done.returncode == 1, done.stderr[-2000:]
    assert "eager-flex       failed: NotImplementedError" in done.stdout
    assert "1 variant(s) failed: eager-flex" in done.stdout
    # MFU against a matmul in each variant's own precision: fp16 (autocast) and fp32
    peaks = next(line for line in done.stdout.splitlines() if line.startswith("matmul peaks"))
    assert "float16 " in peaks and "float32 " in peaks, peaks
    lines = [line.split() for line in done.stdout.splitlines()]
    timed = {parts[0]: parts for parts in lines if parts and "eager-" in parts[0]
             and parts[1] != "failed:"}  # fmt: skip
    assert set(timed) == {"eager-sdpa", "eager-triton", "fp32-eager-sdpa"}
    loss = {name: float(parts[-2]) for name, parts in timed.items()}  # last column: speed
    # the same first-step loss through SDPA and through our kernel (fp16 autocast on CPU),
    # and without autocast (fp32)
    assert loss["eager-triton"] == pytest.approx(loss["eager-sdpa"], rel=1e-3)
    assert loss["fp32-eager-sdpa"] == pytest.approx(loss["eager-sdpa"], rel=1e-2)
    assert timed["eager-sdpa"][-1] == "1.00x"  # speed against the first variant


def test_bench_decode_dry_run_reports_eager_and_compiled_steps():
    command = [sys.executable, str(REPO / "tools" / "bench_decode.py"), "--dry-run",
               "--backends", "sdpa"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("sdpa")]
    assert [r[1] for r in rows] == ["eager", "compiled"]
    assert not any("failed" in r for r in rows)


def test_one_command_gpu_script_runs_its_stages_dry(tmp_path):
    # tools/bench_gpu.sh on the CPU (DRY_RUN=1): each stage's --dry-run, logs and JSON written
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": sys.executable}
    script = str(REPO / "tools" / "bench_gpu.sh")
    done = subprocess.run(["bash", script, str(tmp_path), "check", "targets"], capture_output=True,
                          text=True, timeout=600, env=env, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "== check exit 0" in done.stdout and "16 checks, 0 failed" in done.stdout
    assert "== targets exit 0" in done.stdout
    assert "== every stage passed: check targets" in done.stdout
    rows = json.loads((tmp_path / "targets.json").read_text())["rows"]
    assert {r["mask"] for r in rows} == {"F8K", "C8K"}
    assert (tmp_path / "targets.log").read_text().count("ours (triton)") == 2
    bad = subprocess.run(["bash", script, str(tmp_path), "nope"],
                         capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip
    assert bad.returncode == 2 and "unknown stage nope" in bad.stderr


def test_gpu_script_names_a_failed_stage_runs_the_rest_and_exits_nonzero(tmp_path):
    # a python that fails the targets stage only
    fake = tmp_path / "python"
    fake.write_text(f"""#!/bin/sh
case "$*" in *bench_attention.py*) echo "targets broke" >&2; exit 3;; esac
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    env = {**os.environ, "DRY_RUN": "1", "PYTHON": str(fake)}
    script = str(REPO / "tools" / "bench_gpu.sh")
    command = ["bash", script, str(tmp_path / "out"), "targets", "decode"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "== targets FAILED (exit 3)" in done.stdout
    assert "== decode exit 0" in done.stdout  # the next stage still ran
    assert "== failed stages: targets (exit 3)" in done.stderr


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_fast_kernel_with_a_wrong_output_meets_no_target():
    bench = load_tool("bench_attention")

    def row(mask, implementation, ms, tflops, ok):
        return dict(mask=mask, D=128, implementation=implementation, fwd_ms=ms, bwd_ms=ms,
                    fwd_tflops=tflops, bwd_tflops=tflops, rel_error=0.0, ok=ok)  # fmt: skip

    fast_and_right = [row("F8K", "ours (triton)", 1.0, 900, True),
                      row("C8K", "ours (triton)", 1.0, 900, True),
                      row("C8K", "sdpa is_causal", 2.0, 450, True)]  # fmt: skip
    verdicts = bench.target_verdicts(fast_and_right)
    assert [line.rsplit(": ", 1)[1] for line in verdicts] == ["met"] * 4
    fast_and_wrong = [dict(r, rel_error=0.3, ok=False) if r["implementation"].startswith("ours")
                      else r for r in fast_and_right]  # fmt: skip
    verdicts = bench.target_verdicts(fast_and_wrong)
    assert len(verdicts) == 4 and not any(line.endswith(": met") for line in verdicts)
    assert all("wrong output: ours (triton) rel. error 3.0e-01" in line for line in verdicts)


def test_gpu_check_fails_and_exits_nonzero_when_the_kernel_mask_is_off_by_one():
    # the check script's dry run with the kernel-mask mutant of tests/mutants.py applied
    code = (
        "import runpy, sys, pytest\n"
        "from mutants import BY_NAME\n"
        "BY_NAME['kernel-mask-off-by-one'].apply(pytest.MonkeyPatch())\n"
        f"sys.argv = ['check_attention_gpu.py', '--dry-run']\n"
        f"runpy.run_path({str(REPO / 'tools' / 'check_attention_gpu.py')!r}, run_name='__main__')\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(REPO / "tests")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=env, cwd=REPO)  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    summary = re.search(r"(\d+) checks, (\d+) failed", done.stdout)
    assert summary and int(summary.group(2)) > 0, done.stdout[-2000:]
    assert "FAILED causal float16 D16" in done.stdout
