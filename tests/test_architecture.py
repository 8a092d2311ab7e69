"""The package's shape: imports flow one way without cycles, internal imports sit at the top
of modules unless a comment says why, and the CLI starts without importing torch."""

import ast
import subprocess
import sys
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "geoconvnet"


def test_import_contracts_hold(monkeypatch):
    """pyproject.toml's [tool.importlinter] contracts: stages import downwards only, and no
    two modules of a subpackage import each other, directly or through others."""
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def _late_internal_imports(path: Path):
    """(line, text) of package imports made inside a function without a ``# lazy:`` reason."""
    lines = path.read_text().splitlines()
    for func in ast.walk(ast.parse(path.read_text())):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            internal = (isinstance(node, ast.ImportFrom) and
                        (node.level > 0 or (node.module or "").startswith("geoconvnet")))
            internal |= isinstance(node, ast.Import) and any(
                a.name.startswith("geoconvnet") for a in node.names)
            if internal and "# lazy:" not in lines[node.lineno - 1]:
                yield node.lineno, lines[node.lineno - 1].strip()


def test_internal_imports_are_at_module_top_unless_a_comment_says_why():
    late = {f"{path.relative_to(ROOT)}:{line}": text for path in sorted(PACKAGE.rglob("*.py"))
            for line, text in _late_internal_imports(path)}
    assert not late, f"imports inside functions without a '# lazy: why' comment: {late}"


def test_the_cli_parses_every_command_without_importing_torch():
    code = ("import sys; from geoconvnet.cli import build_parser; build_parser()"
            ".parse_args(['train', '--data', 'x']); print(sorted(m for m in ('torch', "
            "'torchvision', 'sklearn', 'optuna', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_main_functions_load_from_the_package_on_first_use():
    code = ("import sys, geoconvnet; before = 'torch' in sys.modules; "
            "from geoconvnet import evaluate, predict, train; "
            "print(before, train.__module__, predict.__module__, evaluate.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "geoconvnet.training.train",
                                  "geoconvnet.inference.predict", "geoconvnet.inference.evaluate"]
