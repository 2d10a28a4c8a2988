"""Every ``sdoh`` example of README.md runs: exit code 0 and some output, on one demo workspace.

The examples are the ``sdoh`` lines (with their ``\\`` continuations, after any ``VAR=value``
prefix) of the README's ``sh`` and ``bash`` blocks. They run in-process (click's CliRunner)
from a folder where ``sdoh_workspace``, every command's default, is the session's demo
workspace, as they would from the repository's root after ``make demo``. A line that cannot
run there ends with ``# needs: <what>`` (the internet, a service, the user's own files): it
is skipped with that reason. Other lines of the blocks (make, curl, feast) are not run.
"""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingestion.cli import sdoh

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\S*)")
SHELL = {"sh", "bash"}
NEEDS = re.compile(r"#\s*needs:\s*(.+)$")
SDOH_LINE = re.compile(r"^(?:[A-Z_]+=\S+\s+)*sdoh\s")


@dataclass(frozen=True)
class Example:
    """One ``sdoh`` command line of the README: where, its text, and why it cannot run (if so)."""

    line: int
    text: str
    needs: str | None


def fenced_lines(text: str):
    """(language, line number, line) of every line inside a fenced block."""
    language = None
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence:
            language = None if language is not None else fence.group(1)
        elif language is not None:
            yield language, number, line


def examples(text: str) -> list[Example]:
    """The ``sdoh`` commands of the shell blocks, continuation lines joined."""
    found, pending, start = [], None, 0
    for language, number, line in fenced_lines(text):
        if language not in SHELL:
            continue
        if pending is None:
            if not SDOH_LINE.match(line):
                continue
            pending, start = "", number
        stripped = line.rstrip()
        pending += stripped.removesuffix("\\") + " "
        if not stripped.endswith("\\"):
            needs = NEEDS.search(pending)
            found.append(Example(start, " ".join(pending.split()),
                                 needs.group(1).strip() if needs else None))
            pending = None
    return found


EXAMPLES = examples(README.read_text(encoding="utf-8"))


def test_the_readme_has_runnable_examples_and_none_outside_shell_blocks():
    assert len([e for e in EXAMPLES if e.needs is None]) >= 8
    stray = [(number, line) for language, number, line in fenced_lines(README.read_text())
             if language not in SHELL and SDOH_LINE.match(line)]
    assert stray == [], "sdoh lines in blocks that are not sh or bash are never run"


def parse(text: str) -> tuple[dict[str, str], list[str], str | None]:
    """(environment, arguments after ``sdoh``, file of a ``> FILE`` redirection) of a line."""
    words = shlex.split(text, comments=True)
    environment = {}
    while re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        name, _, value = words.pop(0).partition("=")
        environment[name] = value
    assert words[0] == "sdoh", text
    redirect = None
    if ">" in words:
        at = words.index(">")
        redirect, words = words[at + 1], words[:at]
    return environment, words[1:], redirect


@pytest.fixture(scope="module")
def repository_root(demo_run, tmp_path_factory):
    """A folder standing for the repository's root after ``make demo``: sdoh_workspace is there."""
    workspace, _ = demo_run
    root = tmp_path_factory.mktemp("readme")
    (root / "sdoh_workspace").symlink_to(workspace.root, target_is_directory=True)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line {e.line}: {e.text[:60]}")
def test_readme_example_runs(example, repository_root, monkeypatch):
    if example.needs:
        pytest.skip(f"README line {example.line} needs {example.needs}")
    monkeypatch.chdir(repository_root)
    for name in ("SDOH_WORKSPACE", "SDOH_PROFILE"):  # the README's defaults, not the machine's
        monkeypatch.delenv(name, raising=False)
    environment, args, redirect = parse(example.text)
    result = CliRunner().invoke(sdoh, args, env=environment)
    assert result.exit_code == 0, f"{example.text}\n{result.output}"
    if redirect:
        Path(redirect).write_text(result.stdout)
        assert Path(redirect).stat().st_size > 0
    assert result.stdout.strip(), f"{example.text} printed nothing"
