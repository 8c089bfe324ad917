"""Every ``python`` code block of the README runs, in order, in one namespace,
and every ``print(...)  # expected`` line prints what its comment says."""

import ast
import contextlib
import io
import re
import tokenize
import warnings
from pathlib import Path

from sklearn.exceptions import ConvergenceWarning

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _comments(block):
    """The text of each line's trailing comment, by line number."""
    tokens = tokenize.generate_tokens(io.StringIO(block).readline)
    return {
        token.start[0]: token.string.removeprefix("#").strip()
        for token in tokens
        if token.type == tokenize.COMMENT
    }


def _is_print(statement):
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Call)
        and isinstance(statement.value.func, ast.Name)
        and statement.value.func.id == "print"
    )


def run_readme():
    """Run the blocks statement by statement; return ``(printed, comment)``
    for each ``print`` statement whose last line ends with a comment."""
    namespace = {}
    printed_and_expected = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for block in python_blocks():
            comments = _comments(block)
            for statement in ast.parse(block).body:
                code = compile(ast.Module([statement], []), str(README), "exec")
                output = io.StringIO()
                with contextlib.redirect_stdout(output):
                    exec(code, namespace)
                if _is_print(statement) and statement.end_lineno in comments:
                    printed_and_expected.append(
                        (output.getvalue().strip(), comments[statement.end_lineno])
                    )
    return printed_and_expected


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 4


def test_readme_python_blocks_run_and_print_what_their_comments_say():
    printed_and_expected = run_readme()
    assert printed_and_expected, "the README shows no printed output to check"
    for printed, expected in printed_and_expected:
        assert printed == expected
