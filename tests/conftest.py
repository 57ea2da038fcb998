"""Shared fixtures: a small synthetic IEMOCAP-layout corpus, quiet TensorFlow / transformers, and a
persistent JAX compilation cache shared by the test processes and the commands they start (many tests
compile the same tiny programs; the cache changes no number), compiled at XLA's lowest CPU optimisation level.

Under ``CI=true`` a skip that is not on `ALLOWED_SKIPS` fails the run: a missing oracle (PyTorch,
FunASR, MiniLM's weights) must not turn a parity file into skips while CI stays green.
"""

import os
import pathlib
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "mer_jax_test_jit_cache"))
# The tests compile hundreds of tiny programs, each run for a few steps: LLVM's optimisations of XLA's CPU
# code take most of a tiny training's time and buy nothing at these sizes (a 2-epoch demo training from the
# command line: 51 s at the default level, 31 s at level 0, the same metrics). The commands the tests start
# inherit it; benchmarks run at the default level.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=0".strip()

import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402

from mer_jax.data.demo import write_demo_corpus  # noqa: E402


def _shared_path(tmp_path_factory, name: str, make=None) -> pathlib.Path:
    """A folder every test process of this run shares (pytest-xdist workers have sibling base folders),
    made once by whichever process asks first (`make(path)`), under a file lock."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path, done = base / name, base / f"{name}.done"
    with FileLock(f"{path}.lock"):
        if not done.exists():
            path.mkdir(parents=True, exist_ok=True)
            if make is not None:
                make(path)
            done.touch()
    return path


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small demo corpus (5 sessions x 2 dialogues x 12 turns), written once per test run."""
    return _shared_path(tmp_path_factory, "demo", lambda path: write_demo_corpus(
        path, seed=3, dialogues_per_session=2, turns_per_dialogue=12))


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """One ``data.cache_dir`` for the runs on `demo_root` that read no cache of their own: the demo's MFCCs
    are computed once per test run, and compiled steps of the same shapes are shared (the CLI keeps XLA's
    programs under it); both caches are keyed by their inputs, so sharing them changes no number."""
    return _shared_path(tmp_path_factory, "demo_cache")


# The skips CI accepts: a fragment of the skip's reason -> why the skip is legitimate.
ALLOWED_SKIPS = {
    "not found at": "the real public corpora (EmoDB, MELD) live next to the checkout, in ../shared/data; "
                    "a clone elsewhere has none",
}


def _refuse_unlisted_skip(report) -> None:
    if os.environ.get("CI") != "true" or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not any(fragment in reason for fragment in ALLOWED_SKIPS):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, and not on ALLOWED_SKIPS in tests/conftest.py: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _refuse_unlisted_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):  # a module-level pytest.importorskip skips at collection
    outcome = yield
    _refuse_unlisted_skip(outcome.get_result())



@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, demo_root, demo_cache):
    """One tiny fused (audio + text) dynamic-fusion run on `demo_root` (test_cli's TINY settings), trained once
    per test run and shared by the tests that need a trained model but not a training of their own. Read it,
    never write into it (copy it first)."""
    from test_cli import TINY, mer_jax_here

    def train(path):
        result = mer_jax_here("train", "--config=configs/demo.py", f"--workdir={path / 'run'}",
                              f"--config.data.root={demo_root}", f"--config.data.cache_dir={demo_cache}", *TINY)
        assert result.returncode == 0, result.stderr[-3000:]

    return _shared_path(tmp_path_factory, "demo_run", train) / "run"


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory, demo_run):
    """`demo_run` exported (`mer-jax export`): a folder `EmotionRecognizer.from_pretrained` loads. Read only."""
    from mer_jax.inference import export_run

    return _shared_path(tmp_path_factory, "demo_model", lambda path: export_run(demo_run, path / "model")) / "model"
