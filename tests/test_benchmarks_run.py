"""Every benchmark runs to the end at toy sizes and prints both frameworks' numbers and their ratio, so
a change to the library cannot leave a benchmark broken until someone next times it (the numbers
themselves are never asserted: benchmarks/README.md)."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOY_RUNS = {
    "encoder_throughput.py": (["--size", "toy", "--batch", "2", "--length", "8", "--steps", "1", "--warmup", "0"],
                              "flax/torch"),
    "bilstm_throughput.py": (["--batch", "2", "--frames", "12", "--hidden", "8", "--steps", "1", "--warmup", "0"],
                             "PyTorch/JAX"),
    "dynamic_fusion_efficiency.py": (["--size", "toy", "--batches", "2", "--train-batch", "2", "--frames", "16",
                                      "--tokens", "8", "--steps", "1", "--warmup", "0"], "PyTorch/JAX"),
    "speech_encoder_throughput.py": (["--size", "toy", "--batch", "2", "--seconds", "0.5", "--steps", "1",
                                      "--warmup", "0"], "PyTorch/JAX"),
    "lpgnet_seeds.py": (["--seeds", "2", "--hidden", "16", "--dim", "16", "--dialogues", "12", "--utterances", "60",
                         "--max-utterances", "8", "--train-dialogues", "8", "--batch", "4", "--timed-epochs", "1",
                         "--epochs", "2"], "(c)/(b)"),
}
# The serving benchmarks measure mer_jax against itself (no PyTorch side, no host-memory setting): the
# SavedModel in TensorFlow against JAX, and the served page's HTTP API under 8 clients against 1.
SERVING_TOY_RUNS = {
    "savedmodel_latency.py": (["--frames", "40", "--tokens", "8", "--d-model", "16", "--steps", "2", "--warmup", "1"],
                              "/ JAX"),
    "serve_load.py": (["--requests", "8", "--threads", "2", "--warmup", "2"], "(b)/(a)"),
}


# Every toy run in one Python process (each script as `python SCRIPT ARGS` runs it, through runpy), so that
# JAX, PyTorch and transformers are imported once rather than once per script; each script's output
# follows a "##### SCRIPT" line, and a script that fails says "benchmark failed" there and lets the others run.
DRIVER = """
import json, runpy, sys, traceback
sys.path.insert(0, "benchmarks")
for script, args in json.loads(sys.argv[1]):
    print(f"##### {script}", flush=True)
    sys.argv = [script, *args]
    try:
        runpy.run_path(f"benchmarks/{script}", run_name="__main__")
    except SystemExit as e:
        if e.code not in (0, None):
            print(f"benchmark failed: exit {e.code}")
    except BaseException:
        traceback.print_exc(file=sys.stdout)
        print("benchmark failed")
    sys.stdout.flush()
"""


@pytest.fixture(scope="module")
def toy_runs() -> tuple[dict[str, str], str]:
    """Each benchmark's output at toy sizes (with mer-jax's host-memory setting), and the process's stderr."""
    import json

    env = {**os.environ, "USE_TF": "0", "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu"}
    runs = [(script, [*args, "--keep-host-memory"]) for script, (args, _) in sorted(TOY_RUNS.items())]
    result = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(runs)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    sections = result.stdout.split("##### ")[1:]
    return {section.split("\n", 1)[0]: section for section in sections}, result.stderr


@pytest.mark.parametrize("script", sorted(TOY_RUNS))
def test_benchmark_runs_at_toy_sizes(script, toy_runs):
    outputs, stderr = toy_runs
    output = outputs[script]
    assert "benchmark failed" not in output, output[-6000:] + stderr[-4000:]
    assert "freed host memory kept" in output  # --keep-host-memory: mer-jax's setting, for both
    assert TOY_RUNS[script][1] in output


@pytest.mark.parametrize("script", sorted(SERVING_TOY_RUNS))
def test_serving_benchmark_runs_at_toy_sizes(script, request):
    args, ratio_column = SERVING_TOY_RUNS[script]
    if script == "serve_load.py":  # the shared tiny model and corpus instead of training its own
        args = [*args, f"--model={request.getfixturevalue('demo_model')}",
                f"--data={request.getfixturevalue('demo_root')}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu", "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert ratio_column in result.stdout
