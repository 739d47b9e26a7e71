"""The C++ time loop (lmcore/nn/native/lstm_steps.cpp) computes what lstm_bptt's Python loop computes: the same
outputs, final state and gradients of every input, for each variant it serves, in float32 and float64.
.ci/run installs a C++ compiler, so in CI these tests build the extension and run it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lmcore.nn import native
from lmcore.nn.architectures import LSTM_VARIANTS
from lmcore.nn.lstm_backward import _native_steps, run_lstm_layer

from .conftest import require_compiler

REPO = Path(__file__).resolve().parents[1]
NATIVE = ("vanilla", "np", "peephole", "fgr", "niaf", "noaf")  # all four blocks (NIAF, NOAF: a tanh fewer)


def inputs(variant_key: str, dtype: torch.dtype, T: int = 7, B: int = 3, H: int = 5) -> dict:
    """xp, the initial state, U, b and the extras, with a non-zero initial state (as TBPTT hands over)."""
    v = LSTM_VARIANTS[variant_key]
    n = len(v.blocks) * H
    g = torch.Generator().manual_seed(11)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=dtype) * scale).requires_grad_()

    extra = {name: rand(H, scale=0.5) for name in ("p_i", "p_f", "p_o")} if v.peepholes else {}
    if v.gate_recurrence:
        extra["R"] = rand(3 * H, 3 * H, scale=0.3)
    state = (rand(B, H), rand(B, H)) + ((torch.sigmoid(rand(B, 3 * H)).detach().requires_grad_(),)
                                        if v.gate_recurrence else ())
    return {"variant": v, "xp": rand(T, B, n), "state": state, "w_hh": rand(n, H, scale=0.4),
            "b_hh": rand(n, scale=0.1), "extra": extra}


def run(args: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(outputs and final state, gradients of every input) of one layer under a loss that uses them all."""
    leaves = [args["xp"], *args["state"], args["w_hh"], args["b_hh"], *args["extra"].values()]
    for leaf in leaves:
        leaf.grad = None
    out, final = run_lstm_layer(args["variant"], args["xp"], args["state"], args["w_hh"], args["b_hh"],
                                args["extra"])
    g = torch.Generator().manual_seed(5)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    loss = loss + sum((s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum() for s in final)
    loss.backward()
    return [out.detach(), *(s.detach() for s in final)], [leaf.grad.clone() for leaf in leaves]


@pytest.fixture(scope="module")
def ops():
    require_compiler("training keeps the Python loop")
    built = native.lstm_steps()
    assert built is not None, "the C++ time loop did not build (a compiler and ninja are needed)"
    return built


@pytest.mark.parametrize("variant_key", NATIVE)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_native_loop_equals_the_python_loop(ops, variant_key, dtype, tol, monkeypatch):
    args = inputs(variant_key, dtype)
    assert _native_steps(args["variant"], args["xp"]) is ops
    values, grads = run(args)
    monkeypatch.setenv("LMCORE_NATIVE", "0")
    assert _native_steps(args["variant"], args["xp"]) is None
    ref_values, ref_grads = run(args)
    assert len(grads) == len(ref_grads) == 5 + len(args["state"]) - 2 + len(args["extra"])
    for k, (got, want) in enumerate(zip(values + grads, ref_values + ref_grads)):
        assert want.abs().max() > 0, k
        torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=f"output/gradient {k}")


@pytest.mark.parametrize("variant_key", ["vanilla", "fgr"])
@pytest.mark.parametrize("B, H", [(27, 37), (12, 8), (1, 40), (21, 130), (10, 11), (5, 9), (8, 3), (14, 7), (2, 5),
                                  (3, 13)])
def test_native_loop_at_sizes_off_the_product_tiles(ops, variant_key, B, H, monkeypatch):
    """float32 products go through step_product.h's kernel where the CPU has AVX-512 (tiles of 12 rows, panels
    of 32 columns: 27 rows are 12 + 12 + 3) or AVX2 (tiles of up to 6 rows by half a panel, made even: 27 = 6 + 6
    + 5 + 5 + 5, 21, 14 = 5 + 5 + 4, 10, 8 = 4 + 4, 5, 3, 2 and 1 give every height from 1 to 6); 4H = 148 and
    FGR's 3H = 111 columns (panels with a ragged last one), R's product added into a narrowed block of columns;
    at 21 × 130 two threads share each step's rows and panels. The Python loop (ATen's products) is the
    reference."""
    args = inputs(variant_key, torch.float32, T=9, B=B, H=H)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        values, grads = run(args)
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("LMCORE_NATIVE", "0")
    ref_values, ref_grads = run(args)
    for k, (got, want) in enumerate(zip(values + grads, ref_values + ref_grads)):  # float32 sums of up to 4H terms
        torch.testing.assert_close(got, want, rtol=5e-5, atol=1e-5 * want.abs().max().item(), msg=f"output/gradient {k}")


@pytest.mark.parametrize("kernel", ["avx2", "aten"])
def test_every_step_kernel_this_cpu_runs_gives_the_python_loops_result(ops, kernel):
    """A process runs its CPU's best step kernel; LMCORE_STEP_KERNEL steps it down, so that an AVX-512 machine also
    checks the AVX2 kernel and every machine ATen's product, at the ragged sizes of the test above."""
    script = (
        "import torch\n"
        "from tests.test_native_lstm import inputs, run\n"
        "torch.set_num_threads(2)\n"
        "for key in ('vanilla', 'fgr'):\n"
        "    for B, H in ((27, 37), (10, 11), (5, 9), (8, 3)):\n"
        "        args = inputs(key, torch.float32, T=5, B=B, H=H)\n"
        "        got = run(args)\n"
        "        import os; os.environ['LMCORE_NATIVE'] = '0'\n"
        "        want = run(args)\n"
        "        del os.environ['LMCORE_NATIVE']\n"
        "        for g, w in zip(got[0] + got[1], want[0] + want[1]):\n"
        "            torch.testing.assert_close(g, w, rtol=5e-5, atol=1e-5 * w.abs().max().item())\n"
        "print('agree')\n")
    env = dict(os.environ, LMCORE_STEP_KERNEL=kernel, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and "agree" in done.stdout, done.stderr[-2000:]


def test_native_loop_refuses_mixed_dtypes_and_runs_empty_layers(ops):
    """The loops read every tensor as xp's type through raw pointers: float32 xp with float64 weights (either way
    round) is refused as ATen would, not read past its end; H = 0 runs (its share of rows was a division by H)."""
    args = inputs("fgr", torch.float32, T=3, B=4, H=8)
    for name in ("w_hh", "R"):
        mixed = dict(args, **({"w_hh": args["w_hh"].detach().double().requires_grad_()} if name == "w_hh" else
                              {"extra": dict(args["extra"], R=args["extra"]["R"].detach().double())}))
        with pytest.raises(RuntimeError, match="every tensor in Float, one is Double"):
            run_lstm_layer(mixed["variant"], mixed["xp"], mixed["state"], mixed["w_hh"], mixed["b_hh"],
                           mixed["extra"])
    doubled = inputs("vanilla", torch.float64, T=3, B=4, H=8)
    with pytest.raises(RuntimeError, match="every tensor in Double, one is Float"):
        run_lstm_layer(doubled["variant"], doubled["xp"], doubled["state"], doubled["w_hh"].detach().float(), None,
                       doubled["extra"])
    values, grads = run(inputs("vanilla", torch.float32, T=2, B=3, H=0))
    assert [tuple(v.shape) for v in values] == [(2, 3, 0), (3, 0), (3, 0)]


@pytest.mark.parametrize("variant_key", sorted(set(LSTM_VARIANTS) - set(NATIVE)))
def test_other_variants_keep_the_python_loop(variant_key):
    args = inputs(variant_key, torch.float64)
    assert _native_steps(args["variant"], args["xp"]) is None


def test_native_loop_is_not_used_for_half_precision_or_off(monkeypatch):
    args = inputs("fgr", torch.float32)
    assert _native_steps(args["variant"], args["xp"].bfloat16()) is None
    monkeypatch.setenv("LMCORE_NATIVE", "0")
    assert native.lstm_steps() is None


def test_failed_build_falls_back_to_the_python_loop(tmp_path):
    """No usable compiler: one warning, lstm_steps() is None, and an FGR layer still trains (in Python)."""
    script = (
        "import warnings, torch\n"
        "from lmcore.nn import native\n"
        "from tests.test_native_lstm import inputs, run\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    assert native.lstm_steps() is None and native.context_use() is None\n"
        "assert any('could not be built' in str(w.message) for w in caught), [str(w.message) for w in caught]\n"
        "values, grads = run(inputs('fgr', torch.float64))\n"
        "assert all(torch.isfinite(g).all() and g.abs().max() > 0 for g in grads)\n"
        "print('fallback ok')\n")
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fallback ok" in done.stdout


def test_one_build_folder_per_source_text_whatever_the_checkout(tmp_path, monkeypatch):
    """Two clones of the same sources share a build; an edit to any of them (the header too) gets a folder of its
    own, and so does another PyTorch installation (another virtual environment: its headers' path is in the build's
    commands, so two venvs rebuilt one folder over each other); the copies the build compiles are written once and never touched again (a newer file would make ninja
    rebuild)."""
    from torch.utils import cpp_extension
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    texts = {name: (native.SOURCE_DIR / name).read_bytes() for name in native.SOURCE_NAMES}
    folders = []
    for clone, edited in (("a", None), ("b", None), ("c", "activations.h"), ("d", "context_use.cpp")):
        (tmp_path / clone).mkdir()
        for name, text in texts.items():
            (tmp_path / clone / name).write_bytes(text + b"\n// edited\n" if name == edited else text)
        monkeypatch.setattr(native, "SOURCE_DIR", tmp_path / clone)
        folders.append(native._build_dir(cpp_extension))
    assert folders[0] == folders[1] and len(set(folders)) == 3 and folders[0].parent == tmp_path / "ext"
    placed = native._place_sources(folders[3])
    assert [p.name for p in placed] == list(native.SOURCE_NAMES) and all(p.parent == folders[3] for p in placed)
    assert placed[native.SOURCE_NAMES.index("context_use.cpp")].read_bytes() == texts["context_use.cpp"] + b"\n// edited\n"
    stamps = [p.stat().st_mtime_ns for p in placed]
    for name in native.SOURCE_NAMES:  # the checkout's files are newer now; the placed copies must not follow them
        os.utime(tmp_path / "d" / name)
    assert native._place_sources(folders[3]) == placed and [p.stat().st_mtime_ns for p in placed] == stamps
    assert sorted(p.name for p in folders[3].iterdir()) == sorted(native.SOURCE_NAMES)  # no temporary file left
    monkeypatch.setattr(native, "SOURCE_DIR", tmp_path / "a")  # the same text against another PyTorch (another
    monkeypatch.setattr(native, "_torch_dir", lambda: str(tmp_path / "other-venv" / "torch"))  # venv): its own
    assert native._build_dir(cpp_extension) not in folders


def test_a_build_killed_midway_does_not_hold_later_starts(ops):
    """A build killed midway (a test run interrupted, Ctrl-C) left PyTorch's lock file behind, and every later
    process waited for it for ever: the app's pages, every training job. The next start clears it and loads."""
    from torch.utils import cpp_extension
    stale = native._build_dir(cpp_extension) / "lock"
    stale.touch()
    script = "from lmcore.nn import native\nassert native.lstm_steps() is not None\nprint('loaded')\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr[-3000:]
    assert not stale.exists()


def test_every_loop_over_units_is_vectorised_in_its_avx2_build(ops):
    """The loops over units are what the compiler must vectorise (activations.h). A flag tested inside the LSTM's
    loop (NIAF's and NOAF's, once) kept GCC from it without a word: every gate scalar, the forward 2.8× slower.
    Read from the library itself: each loop's x86-64-v3 clone computes in 256-bit registers."""
    from torch.utils import cpp_extension
    objdump = shutil.which("objdump")
    if objdump is None:
        assert not os.environ.get("LMCORE_REQUIRE_NATIVE"), ".ci/run installed g++, whose binutils has objdump"
        pytest.skip("needs objdump (binutils) to read the built library")
    library, = native._build_dir(cpp_extension).glob("*.so")
    listing = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", str(library)], capture_output=True,
                             text=True, check=True, timeout=120).stdout
    clones = re.findall(r"<\(anonymous namespace\)::(\w+)\([^\n]*\[clone \.arch_x86_64_v3\]>:\n(.*?)\n\n", listing,
                        re.S)
    if not clones:
        pytest.skip("no x86-64-v3 clones: built by a compiler other than GCC 12+ on x86-64")
    loops = {name for name, _ in clones}
    assert {f"{way}_rows_{kind}" for way in ("forward", "backward")
            for kind in ("plain", "peep", "fgr", "niaf", "noaf")} <= loops
    assert {"forward_tanh", "backward_sigmoid", "gates_row_of", "row_nll_float"} <= loops  # Elman, context use
    assert {"gru_forward_float", "gru_backward_float", "gru_row_of"} <= loops  # the GRU, its context windows
    assert {"fill_float", "block_sum_squares", "block_sgd", "block_adam"} <= loops  # dropout, the optimizers
    scalar = sorted({name for name, body in clones if "ymm" not in body})
    assert not scalar, f"loops over units compiled without vector registers: {scalar}"
