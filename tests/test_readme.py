"""Every ``python`` code block of the README runs, in order, in one namespace."""

import re
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 4


def test_readme_python_blocks_run():
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for block in python_blocks():
            exec(compile(block, str(README), "exec"), namespace)
