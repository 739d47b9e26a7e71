"""The structure holds: the layers of .importlinter (views → appstate → lmcore; inside lmcore cli → runs →
training → nn → corpus; viz draws only what it is given; no Streamlit in lmcore; no import cycles at any depth),
and imports at the top of their module unless a start-up cost was measured (listed here, with the reason)."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*REPO.glob("lmcore/**/*.py"), *REPO.glob("appstate/**/*.py"), *REPO.glob("views/*.py"),
                  REPO / "app.py"])

# (file, imported module): why it is imported inside a function. Each cost measured with python -X importtime.
LATE_IMPORTS = {
    ("lmcore/inspect/embeddings.py", "sklearn.manifold"): "scikit-learn: ~1.5 s of every page's start, for t-SNE only",
    ("lmcore/inspect/embeddings.py", "threadpoolctl"): "comes with scikit-learn, imported with it",
    ("lmcore/nn/unroll.py", "torch._dynamo"): "1.6 s of every model import (each CLI call, each job), for torch.compile",
    ("lmcore/nn/native/__init__.py", "torch.utils"): "cpp_extension: 0.14 s of every model import, for a build done once",
    ("lmcore/runs/executors.py", "ray"): "optional: only the Ray executor needs Ray (requirements-dev.txt)",
    ("lmcore/training/trainer.py", "torch.nn.parallel"): "DistributedDataParallel: only torchrun's ranks need it",
    ("appstate/home.py", "lmcore.runs.service"): "the job service brings torch (3.3 s): only when a run is active",
    ("appstate/home.py", "lmcore.nn"): "native brings torch (1.3 s): in the C++ build's timer thread, not at a paint",
    ("lmcore/cli/inspect.py", "lmcore.cli.inspections"): "pandas (0.4 s of every CLI call, each job): inspect only",
    ("lmcore/cli/sweep.py", "lmcore.runs.reports"): "pandas (0.4 s of every CLI call, each job): sweep tables only",
}


def _late_imports(path: Path) -> set[tuple[str, str]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom):
                    found.add((str(path.relative_to(REPO)), inner.module or "."))
                elif isinstance(inner, ast.Import):
                    found.update((str(path.relative_to(REPO)), alias.name) for alias in inner.names)
    return found


def test_the_import_contracts_are_kept():
    lint = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    result = subprocess.run([sys.executable, "-c", lint], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.split("Contracts:")[-1].split("\n")[0].replace("0 broken", "")


def test_imports_inside_functions_are_only_the_measured_ones():
    found = set().union(*(_late_imports(p) for p in SOURCES))
    assert found <= set(LATE_IMPORTS), f"import at the module's top, or measure why not: {sorted(found - set(LATE_IMPORTS))}"


def test_a_broken_layer_is_caught(tmp_path):
    """The contracts can fail: a copy of the config that forbids what lmcore does (nn importing corpus) breaks."""
    config = tmp_path / "forbid.ini"
    config.write_text("[importlinter]\nroot_package = lmcore\n\n[importlinter:contract:x]\nname = x\n"
                      "type = forbidden\nsource_modules = lmcore.nn\nforbidden_modules = lmcore.values\n")
    lint = (f"import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True, no_logo=True))")
    result = subprocess.run([sys.executable, "-c", lint], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "lmcore.nn" in result.stdout
