"""Build and pip-install throw-away third-party plugin packages into a temporary target directory.

Installing with ``pip install --target`` gives real distribution metadata and entry points without
touching the environment the tests run in; subprocesses see the package through ``PYTHONPATH``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def build_plugin_package(root: Path, dist_name: str, module: str, entry_name: str, source: str) -> Path:
    project = root / dist_name
    (project / module).mkdir(parents=True)
    (project / module / "__init__.py").write_text(textwrap.dedent(source))
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist_name}"
            version = "1.2.3"

            [project.entry-points.embhub]
            {entry_name} = "{module}"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    return project


def pip_install_target(project: Path, target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(project)],
        check=True,
        capture_output=True,
        text=True,
    )
