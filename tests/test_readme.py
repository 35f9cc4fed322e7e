"""The README opens with the set-up block, and CI (.ci/run) runs the test command from it."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ci_extract(readme_text: str) -> str:
    """What .ci/run takes as the test command from a README with ``readme_text``."""
    script = open(os.path.join(ROOT, ".ci", "run")).read()
    awk = re.search(r"awk '(.*?)' README.md", script).group(1)
    return subprocess.run(["awk", awk], input=readme_text, capture_output=True, text=True, check=True).stdout.strip()


def test_readme_opens_with_name_sentence_and_one_setup_block():
    text = open(os.path.join(ROOT, "README.md")).read()
    lines = text.splitlines()
    assert lines[0] == "# capture"
    block = text.split("```")[1].splitlines()[1:]  # the first fenced block, after its language tag
    assert block[0] == 'pip install -e ".[test,bench]" && python -m bench --quick'
    assert "pytest" in block[1]
    assert _ci_extract(text) == block[1]


def test_ci_takes_the_test_command_whatever_its_pip_extras():
    text = open(os.path.join(ROOT, "README.md")).read()
    command = text.split("```")[1].splitlines()[2]
    more_extras = command.replace(".[test", ".[test,cpu,extra", 1)
    assert more_extras != command
    assert _ci_extract(text.replace(command, more_extras, 1)) == more_extras
