"""The package's shape: one-way flow between stages, no import cycles, options as arguments."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "localdigest"


def test_import_linter_layers_contract_holds():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    result = subprocess.run([lint], cwd=PACKAGE.parent, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_no_module_imports_itself_back():
    graph = grimp.build_graph("localdigest", include_external_packages=False)
    cycles = []
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.find_shortest_chain(importer=imported, imported=module):
                cycles.append((module, imported))
    # A package's __init__ re-exporting its own modules is not a cycle in the flow.
    cycles = [pair for pair in cycles if not any(m in ("localdigest", "localdigest.cli") for m in pair)]
    assert cycles == []


@pytest.mark.parametrize("pattern", [r"os\.environ\[[^\]]+\]\s*=", r"os\.environ\.(setdefault|update|pop)\(",
                                     r"\bputenv\(", r"sys\.argv"])
def test_only_the_cli_writes_the_environment_or_reads_argv(pattern):
    offenders = [f"{path.relative_to(PACKAGE)}:{number}"
                 for path in PACKAGE.rglob("*.py") if path.parent.name not in ("cli", "testing")
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(pattern, line)]
    assert offenders == []


def test_library_messages_name_settings_not_flags():
    """Flags are the CLI's: below it, a message names a setting with errors.option()."""
    flag_in_string = re.compile(r"""["'][^"'\n]*\s--(ctx|batch-size|feed|date|offline|server|api-key|parallel|"""
                                r"""out|cache-dir|no-cache|gpu-layers|name|chat-format|model)(?![\w-])""")
    offenders = [f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
                 for path in PACKAGE.rglob("*.py") if path.parent.name not in ("cli", "testing")
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if flag_in_string.search(line) and not line.strip().startswith(("#", '"""'))]
    assert offenders == []
