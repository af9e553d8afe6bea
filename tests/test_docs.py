"""Every relative link in the README and the guides points to a file that exists, and every #anchor to
one of its headings."""

import pathlib
import re

import pytest

from conftest import REPO

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _anchors(markdown: str) -> set:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", FENCE.sub("", markdown), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def relative_links(path: pathlib.Path):
    """(target, anchor) of every link in `path` outside code blocks that is not a URL."""
    for target in LINK.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        yield file, anchor


def test_the_link_check_reads_links_and_anchors_as_github_does(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# The trial's cost\n\n[a](other.md#at-product-scale) ![b](images/x.png) [c](https://x.org)\n"
                    "```\n[in code](nowhere.md)\n```\n")
    assert list(relative_links(page)) == [("other.md", "at-product-scale"), ("images/x.png", "")]
    assert _anchors(page.read_text()) == {"the-trials-cost"}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(document):
    broken = []
    for file, anchor in relative_links(document):
        target = (document.parent / file).resolve() if file else document
        if not target.exists():
            broken.append(f"{file}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target.read_text(encoding="utf-8")):
            broken.append(f"{file}#{anchor}: no such heading")
    assert broken == [], f"{document.relative_to(REPO)}: {broken}"


def test_the_readme_stays_a_front_door():
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 300


def _quickstart_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_the_quickstart_is_two_commands_and_ci_runs_the_test_one():
    install_and_run, install_and_test = _quickstart_commands()
    assert install_and_run.endswith("python -m layernas_tf.main")
    assert install_and_test.endswith("python -m pytest tests")
    assert install_and_test in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_quickstart_installs_mediapipe_at_setup_pys_pin():
    pinned = re.search(r'^MEDIAPIPE = "(.+)"$', (REPO / "setup.py").read_text(), re.M).group(1)
    for command in _quickstart_commands():
        assert f'pip install -q "{pinned}"' in command
