"""MkDocs hooks: the site's pages, made from the Markdown that the tests execute.

docs/tutorial.md stays one page, run block by block by tests/tutorial.py. At
build time it becomes the lesson's pages, its text unchanged:

* its opening is the lesson's home (``tutorial.md``); "Before you start" is
  ``tutorial/setup.md``; each numbered episode is a page of its own; what follows
  the last episode (the recap) is ``tutorial/recap.md``; links follow the pages;
* the ``output`` blocks after a command block become one labelled block, or a
  labelled tab each where Slurm versions print differently (``output
  slurm>=23.02``, ``output slurm<23.02``); ``output site`` says that a site's
  own values differ; output blocks get no copy button, command blocks do;
* the boxes become admonitions: questions and objectives, "Lost your shell?",
  each exercise (its solution folded inside it), key points; every other
  ``<details>`` is folded too.

README.md is the site's home page, its links to docs/ made relative. Mermaid's
JavaScript is served by the site itself: fetched once with npm into .cache/,
never loaded from a CDN when a page is read.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from markdown.extensions.toc import slugify
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page as MkDocsPage

logger = logging.getLogger("mkdocs.hooks.volcano")

LESSON = "tutorial.md"
FOLDER = "tutorial"
#: Mermaid's release, pinned (Material for MkDocs 9 drives mermaid 11).
MERMAID = "11.17.2"
MERMAID_SITE_PATH = "assets/vendor/mermaid.min.js"
#: The label of output that a site's own settings change.
SITE_LABEL = "on your site this differs"
INDENT = "    "

_FENCE = re.compile(r"^```")
_DETAILS = re.compile(r"^<details><summary>(?P<title>.*)</summary>$")
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_VERSION = re.compile(r"slurm(?P<op>>=|<)(?P<version>\d+\.\d+)")


def output_labels(conditions: list[list[str]]) -> list[str]:
    """The label of each output block of a command, from the conditions in their info strings.

    The tests take the first block whose version conditions hold, so a block
    also ends where an earlier block's ``slurm>=`` begins.
    """

    def bounds(own: list[str], op: str) -> list[tuple[int, ...]]:
        found = [m for c in own if (m := _VERSION.fullmatch(c)) and m["op"] == op]
        return [tuple(int(part) for part in m["version"].split(".")) for m in found]

    labels = []
    for index, own in enumerate(conditions):
        since = bounds(own, ">=")
        earlier = [v for block in conditions[:index] for v in bounds(block, ">=")]
        before = bounds(own, "<") + [v for v in earlier if not since or v > max(since)]
        parts = [f"Slurm {_version(max(since))} and later"] if since else []
        parts += [f"before {_version(min(before))}"] if before else []
        parts += [SITE_LABEL] if "site" in own else []
        labels.append(", ".join(parts) or ("other Slurm versions" if len(conditions) > 1 else ""))
    return labels


def _version(numbers: tuple[int, ...]) -> str:
    return f"{numbers[0]}.{numbers[1]:02d}"


# ------------------------------------------------------------------ a page in chunks
@dataclass(frozen=True)
class Chunk:
    """A fenced block, a ``<details>`` or ``</details>`` line, or a paragraph."""

    kind: str  # "fence", "open", "close" or "text"
    lines: list[str]

    @property
    def info(self) -> list[str]:
        return self.lines[0][3:].split() if self.kind == "fence" else []

    def lead(self, pattern: str) -> re.Match[str] | None:
        return re.match(pattern, self.lines[0]) if self.kind == "text" else None


def chunks(text: str) -> list[Chunk]:
    found: list[Chunk] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        end = index + 1
        if _FENCE.match(line):
            end = lines.index("```", index + 1) + 1
            found.append(Chunk("fence", lines[index:end]))
        elif _DETAILS.match(line) or line == "</details>":
            found.append(Chunk("close" if line == "</details>" else "open", [line]))
        elif line.strip():
            while end < len(lines) and lines[end].strip() and not _FENCE.match(lines[end]):
                end += 1
            found.append(Chunk("text", lines[index:end]))
        index = end
    return found


def _closing(items: list[Chunk], opening: int) -> int:
    """The index of the ``</details>`` that closes the one at ``opening``."""
    depth = 0
    for index in range(opening, len(items)):
        depth += {"open": 1, "close": -1}.get(items[index].kind, 0)
        if depth == 0:
            return index
    raise ValueError(f"never closed: {items[opening].lines[0]}")


def _box(kind: str, title: str, body: list[str]) -> list[str]:
    return [f'{kind} "{title}"', "", *[INDENT + line if line else "" for line in body]]


def _rest(chunk: Chunk, lead: re.Match[str]) -> Chunk:
    """The paragraph without its bold lead."""
    return Chunk("text", [chunk.lines[0][lead.end() :], *chunk.lines[1:]])


def render(items: list[Chunk]) -> list[str]:
    """Markdown for Material for MkDocs: outputs labelled, boxes as admonitions."""
    blocks: list[list[str]] = []
    index = 0
    while index < len(items):
        chunk, end = items[index], index
        if chunk.info[:1] == ["output"]:
            while end + 1 < len(items) and items[end + 1].info[:1] == ["output"]:
                end += 1
            blocks.append(_outputs(items[index : end + 1]))
        elif chunk.kind == "open":
            end = _closing(items, index)
            title = chunk.lines[0][len("<details><summary>") : -len("</summary>")]
            kind = "??? success" if title == "Solution" else "??? info"
            blocks.append(_box(kind, title, render(items[index + 1 : end])))
        elif boxed := _boxed(items, index):
            end, box = boxed
            blocks.append(box)
        else:
            blocks.append(chunk.lines)
        index = end + 1
    return [line for block in blocks for line in [*block, ""]][:-1]


def _boxed(items: list[Chunk], index: int) -> tuple[int, list[str]] | None:
    """The box that a bold lead starts at ``index``, and where it ends; None if none does."""
    chunk, end = items[index], index

    def then(kind: str) -> bool:
        return end + 1 < len(items) and items[end + 1].kind == kind

    if lead := chunk.lead(r"\*\*(Exercise [\d.]+?)\.?\*\*( \*\((extra)\)\*)?\.? "):
        while then("fence"):
            end += 1  # its commands
        if then("open"):
            end = _closing(items, end + 1)  # its solution
        body = render([_rest(chunk, lead), *items[index + 1 : end + 1]])
        return end, _box("!!! question", lead[1] + (" (extra)" if lead[3] else ""), body)
    if lead := chunk.lead(r"\*\*(Lost your shell\?)\*\* "):
        while then("fence"):
            end += 1
        if then("text") and items[end + 1].lead(r"\("):
            end += 1  # a remark in brackets on what it printed
        return end, _box(
            "!!! tip", lead[1], render([_rest(chunk, lead), *items[index + 1 : end + 1]])
        )
    if chunk.lead(r"\*\*Questions:\*\*"):
        if then("text") and items[end + 1].lead(r"\*\*Objectives:\*\*"):
            end += 1
        overview = [line for item in items[index : end + 1] for line in [*item.lines, ""]]
        return end, _box("!!! abstract", "Overview", overview[:-1])
    if chunk.lines == ["**Key points**"] and then("text"):
        return end + 1, _box("!!! note", "Key points", items[end + 1].lines)
    return None


def _outputs(blocks: list[Chunk]) -> list[str]:
    """A command's output: one labelled block, or a labelled tab for each alternative."""
    labels = output_labels([block.info[1:] for block in blocks])

    def fence(block: Chunk, title: str) -> list[str]:
        return [f'``` {{ .text .no-copy title="{title}" }}', *block.lines[1:]]

    if len(blocks) == 1:
        return fence(blocks[0], f"output: {labels[0]}" if labels[0] else "output")
    tabs: list[str] = []
    for block, label in zip(blocks, labels, strict=True):
        tabs += [f'=== "{label}"', "", *[INDENT + line for line in fence(block, "output")], ""]
    return tabs[:-1]


# ------------------------------------------------------------------ the lesson's pages
@dataclass(frozen=True)
class Page:
    path: str  # relative to docs/
    markdown: str  # for Material for MkDocs
    source: str  # the part of docs/tutorial.md it is made from


def _sections(text: str) -> list[list[str]]:
    """The lines before the first ``## `` heading, then the lines of each such section."""
    sections: list[list[str]] = [[]]
    fenced = False
    for line in text.splitlines():
        fenced ^= bool(_FENCE.match(line))
        if line.startswith("## ") and not fenced:
            sections.append([])
        sections[-1].append(line)
    return sections


def lesson_pages(text: str) -> list[Page]:
    """The lesson as pages: its home, set-up, one per episode, the recap."""
    opening, *sections = _sections(text)
    episodes = [k for k, section in enumerate(sections) if re.match(r"## \d+\. ", section[0])]
    groups = {"setup": sections[: episodes[0]]}
    groups |= {slugify(sections[k][0][3:], "-"): [sections[k]] for k in episodes}
    groups["recap"] = sections[episodes[-1] + 1 :]
    pages, sources = {LESSON: opening}, {LESSON: opening}
    for name, group in groups.items():
        first, *rest = group
        pages[f"{FOLDER}/{name}.md"] = [f"# {first[0][3:]}", *first[1:]]
        pages[f"{FOLDER}/{name}.md"] += [line for section in rest for line in section]
        sources[f"{FOLDER}/{name}.md"] = [line for section in group for line in section]
    anchors = {
        slugify(line.lstrip("#").strip(), "-"): (path, number == 0)
        for path, lines in pages.items()
        for number, line in enumerate(lines)
        if re.match(r"#+ ", line)
    }
    return [
        Page(
            path,
            relinked("\n".join(render(chunks("\n".join(lines)))) + "\n", path, anchors),
            "\n".join(sources[path]) + "\n",
        )
        for path, lines in pages.items()
    ]


def relinked(markdown: str, path: str, anchors: dict[str, tuple[str, bool]]) -> str:
    """Links as they must read from the page at ``path`` (outside fenced blocks).

    ``#anchor`` on another page becomes a link to that page (to the heading
    unless it is the page's title); a relative link from a page in a folder
    goes up one.
    """
    here = os.path.dirname(path) or "."

    def target(match: re.Match[str]) -> str:
        link = match["target"]
        if link.startswith("#") and link[1:] in anchors:
            page, title = anchors[link[1:]]
            if page != path:
                return f"]({os.path.relpath(page, here)}{'' if title else link})"
        elif not re.match(r"#|[a-z]+:|/", link):
            return f"]({os.path.relpath(link, here)})"
        return match[0]

    parts = re.split(r"(^```.*?^```$)", markdown, flags=re.MULTILINE | re.DOTALL)
    return "".join(part if part.startswith("```") else _LINK.sub(target, part) for part in parts)


def four_space_lists(markdown: str) -> str:
    """Lists as Python-Markdown reads them: what belongs to an item indented four spaces more.

    GitHub, like CommonMark, nests a paragraph, a fenced block or a list in an
    item when it is indented as far as the item's text (2 for ``* ``, 3 for
    ``1. ``); Python-Markdown wants four spaces, or it ends the list there.
    """
    lines = []
    stack = [(0, 0)]  # (column of an item's text here, that column for Python-Markdown)
    fence: tuple[int, int] | None = None  # an open fence's shift: (its column, spaces added)
    for line in markdown.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if fence is not None:
            lines.append(" " * fence[1] + line if line.strip() else line)
            fence = None if line.strip() == "```" and indent == fence[0] else fence
            continue
        if not line.strip():
            lines.append(line)
            continue
        while len(stack) > 1 and indent < stack[-1][0]:
            stack.pop()
        column, moved = stack[-1]
        new = moved + indent - column
        if item := re.match(r" *([*-]|\d+\.) ", line):
            stack.append((item.end(), new + 4))
            if lines and lines[-1].strip() and new < len(lines[-1]) - len(lines[-1].lstrip()):
                lines.append("")  # or Python-Markdown reads it on as the paragraph above
        if _FENCE.match(line.lstrip()):
            fence = (indent, new - indent)
        lines.append(" " * new + line.lstrip(" "))
    return "\n".join(lines) + "\n"


def home_page(readme: str) -> str:
    """README.md as the site's home: its links into docs/ made relative to docs/."""
    return re.sub(r"\]\(docs/", "](", readme)


# ------------------------------------------------------------------ MkDocs' events
def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """The lesson's pages in the navigation, where it names tutorial.md; mermaid, local."""
    pages = [page.path for page in lesson_pages((Path(config.docs_dir) / LESSON).read_text())]

    def expanded(entry: Any) -> Any:
        if isinstance(entry, dict):
            return {key: expanded(value) for key, value in entry.items()}
        if isinstance(entry, list):
            return [item for value in entry for item in _spread(expanded(value), pages)]
        return entry

    config.nav = expanded(config.nav)
    if _mermaid(config) is not None:
        config.extra_javascript.insert(0, MERMAID_SITE_PATH)
    return config


def _spread(entry: Any, pages: list[str]) -> list[Any]:
    """The lesson's home in the navigation becomes all of its pages."""
    lesson = [{"Overview": LESSON}, *pages[1:]]
    if entry == LESSON:
        return lesson
    if isinstance(entry, dict) and list(entry.values()) == [LESSON]:
        return [{key: lesson} for key in entry]
    return [entry]


def on_page_markdown(markdown: str, page: MkDocsPage, **_: Any) -> str:
    """Links to the README made links to the home page; lists made for Python-Markdown
    (not in the lesson's pages: their lists nest nothing)."""
    if page.file.src_uri == LESSON or page.file.src_uri.startswith(f"{FOLDER}/"):
        return markdown
    up = "../" * page.file.src_uri.count("/")  # README.md is the site's index.md
    return four_space_lists(markdown.replace(f"]({up}../README.md", f"]({up}index.md"))


def on_files(files: Files, config: MkDocsConfig) -> Files:
    docs = Path(config.docs_dir)
    for page in lesson_pages((docs / LESSON).read_text()):
        if (existing := files.get_file_from_path(page.path)) is not None:
            files.remove(existing)
        files.append(File.generated(config, page.path, content=page.markdown))
    readme = (Path(config.config_file_path).parent / "README.md").read_text()
    files.append(File.generated(config, "index.md", content=home_page(readme)))
    if (mermaid := _mermaid(config)) is not None:
        files.append(File.generated(config, MERMAID_SITE_PATH, abs_src_path=str(mermaid)))
    return files


def _mermaid(config: MkDocsConfig) -> Path | None:
    """Mermaid's script in .cache/, fetched with npm the first time; None without npm."""
    cached = Path(config.config_file_path).parent / ".cache" / f"mermaid-{MERMAID}.min.js"
    if cached.is_file():
        return cached
    npm = shutil.which("npm")
    if npm is None:
        logger.info("no npm: the diagrams will load mermaid from the web when a page is read")
        return None
    with tempfile.TemporaryDirectory() as scratch:
        packed = subprocess.run(
            [npm, "pack", f"mermaid@{MERMAID}", "--silent", "--pack-destination", scratch],
            capture_output=True,
            text=True,
            check=False,
        )
        if packed.returncode != 0:
            logger.warning("npm pack mermaid@%s failed: %s", MERMAID, packed.stderr.strip())
            return None
        with tarfile.open(Path(scratch) / packed.stdout.strip().splitlines()[-1]) as tar:
            script = tar.extractfile("package/dist/mermaid.min.js")
            if script is None:
                raise ValueError(f"mermaid@{MERMAID} has no dist/mermaid.min.js")
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_suffix(".part")
            partial.write_bytes(script.read())
            partial.replace(cached)
    return cached
