"""The website: built from docs/ with every warning an error, then read in a real browser.

docs/hooks.py makes the lesson's pages from docs/tutorial.md at build time;
here: nothing of the lesson is lost on the way, the build is strict, and in
headless Chromium (tests/browser.py) every copy button copies exactly its
command block, every output alternative carries its label, the diagrams are
drawn, and every page fits a phone's width and loads nothing from elsewhere.
Screenshots are kept in the folder named at the end of the run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docs import hooks
from tests.browser import (
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    chromium,
    served,
    shadow_svgs,
    skip_or_fail,
    waited,
)
from tests.helpers import REPO
from tests.tutorial import fenced_blocks, paired

TUTORIAL = (REPO / "docs/tutorial.md").read_text()
PAGES = hooks.lesson_pages(TUTORIAL)


def _html(page: str) -> str:
    """A page's file in the built site (``use_directory_urls: false``)."""
    return re.sub(r"\.md$", ".html", page)


def build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of the project at ``project`` into ``site``."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once for the session."""
    folder = tmp_path_factory.mktemp("site")
    built = build(REPO, folder)
    assert built.returncode == 0, built.stderr
    return folder


def test_the_site_builds_with_no_warning(site: Path) -> None:
    for path in [*(page.path for page in PAGES), "index.md", "instructors.md", "guide/index.md"]:
        assert (site / _html(path)).is_file(), path
    assert not (site / "hooks.py").exists()
    assert not (site / "conftest.py").exists()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(REPO / "docs", project / "docs")
    for name in ("mkdocs.yml", "README.md", f".cache/mermaid-{hooks.MERMAID}.min.js"):
        if (REPO / name).exists():  # (mermaid's script, if fetched already)
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    page = project / "docs/guide/index.md"
    text = page.read_text()
    assert "(memory.md)" in text
    page.write_text(text.replace("(memory.md)", "(memory-nowhere.md)", 1))
    built = build(project, tmp_path / "site")
    assert built.returncode != 0
    assert "memory-nowhere.md" in built.stderr


def _fences(markdown: str, language: str) -> list[str]:
    """The text of each fenced block of ``language``, those indented in boxes too."""
    pattern = rf"^(?P<indent> *)```(?: {{ \.)?{language}\b[^\n]*\n(?P<body>.*?)^(?P=indent)```$"
    return [
        re.sub(rf"^{match['indent']}", "", match["body"], flags=re.MULTILINE)
        for match in re.finditer(pattern, markdown, flags=re.MULTILINE | re.DOTALL)
    ]


def test_every_block_of_the_lesson_is_on_its_pages_once_and_in_order() -> None:
    for language, source_language in (("bash", "bash"), ("mermaid", "mermaid"), ("text", "output")):
        on_pages = [body for page in PAGES for body in _fences(page.markdown, language)]
        in_lesson = [b.source for b in fenced_blocks(TUTORIAL) if b.language == source_language]
        assert on_pages == in_lesson, language
    assert "".join(page.source for page in PAGES).strip() == TUTORIAL.strip()


def test_every_line_of_the_lesson_s_text_is_on_its_pages() -> None:
    def unlinked(text: str) -> str:  # links are made to fit each page
        return re.sub(r"\]\([^)]*\)", "]()", text)

    pages = "\n".join(unlinked(line.strip()) for p in PAGES for line in p.markdown.splitlines())
    outside = unlinked(re.sub(r"^```.*?^```$", "", TUTORIAL, flags=re.MULTILINE | re.DOTALL))
    leads = (  # the headings, and the bold leads that became the boxes' titles
        r"^## |^\*\*Key points\*\*$|"
        r"^\*\*(Exercise [\d.]+|Lost your shell\?)\.?\*\*( \*\(extra\)\*)?\.? "
    )
    for line in outside.splitlines():
        text = re.sub(leads, "", line).strip()
        if text and not re.fullmatch(r"</details>|<details><summary>.*</summary>", text):
            assert text in pages, line


def test_output_labels_say_which_version_or_site_each_output_is_for() -> None:
    assert hooks.output_labels([["slurm>=23.02"], ["slurm<23.02"]]) == [
        "Slurm 23.02 and later",
        "before 23.02",
    ]
    assert hooks.output_labels([["site"]]) == ["on your site this differs"]
    assert hooks.output_labels([[]]) == [""]  # the plain "output"
    assert hooks.output_labels([["slurm>=26.05"], []]) == [
        "Slurm 26.05 and later",
        "before 26.05",
    ]
    assert hooks.output_labels([[], ["slurm<23.02"]]) == ["other Slurm versions", "before 23.02"]
    # A third version: each block holds from its own version up to an earlier block's.
    assert hooks.output_labels([["slurm>=26.05"], ["slurm>=23.02", "site"], ["slurm<23.02"]]) == [
        "Slurm 26.05 and later",
        "Slurm 23.02 and later, before 26.05, on your site this differs",
        "before 23.02",
    ]


# ------------------------------------------------------------------ in a real browser
@pytest.fixture(scope="session")
def screenshots(request: pytest.FixtureRequest) -> Path:
    """The last run's screenshots, in this checkout's .cache/ (pytest's own temporary
    folders are removed by later sessions: three are kept, whoever runs them)."""
    folder = REPO / ".cache/site-screenshots"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    request.config.stash[SCREENSHOTS] = folder
    return folder


@pytest.fixture(scope="session")
def browser(site: Path) -> Iterator[tuple[Any, str]]:
    """Chromium, and the site's address on localhost."""
    if not (site / hooks.MERMAID_SITE_PATH).is_file():
        skip_or_fail("the site has no mermaid script: npm fetches it at build time")
    with served(site) as base, chromium() as driver:
        driver.execute_cdp_cmd(
            "Browser.grantPermissions",
            {"origin": base.rstrip("/"), "permissions": ["clipboardReadWrite"]},
        )
        yield driver, base


def _open(browser: tuple[Any, str], page: str, size: tuple[int, int] = DESKTOP) -> Any:
    driver, base = browser
    driver.set_window_size(*size)
    driver.get(base + _html(page))
    waited(lambda: driver.execute_script("return document.readyState") == "complete")
    return driver


def _copy_buttons(driver: Any, count: int) -> list[Any]:
    """The page's copy buttons, once Material for MkDocs has added ``count``; and no more."""

    def found() -> list[Any] | None:
        buttons = driver.find_elements("css selector", "article button[data-md-type='copy']")
        return buttons if len(buttons) >= count else None

    buttons = waited(found, what=f"{count} copy buttons") if count else []
    assert len(buttons) == count  # none on the outputs
    return buttons


def _copied(driver: Any) -> str:
    """What the copy button just clicked put on the clipboard (it holds a marker before)."""

    def clipboard() -> str | None:
        text: str = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, error => done('(no text: ' + error + ')'));"
        )
        return None if text == "(nothing copied)" else text

    return waited(clipboard, what="the clipboard to change")


def test_every_copy_button_copies_exactly_its_commands(
    browser: tuple[Any, str], screenshots: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    copied = []
    for page in PAGES:
        driver = _open(browser, page.path)
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        buttons = _copy_buttons(driver, len(_fences(page.markdown, "bash")))
        for button in buttons:
            driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "navigator.clipboard.writeText('(nothing copied)').then(done, done);"
            )
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
            ActionChains(driver).move_to_element(button).click().perform()
            copied.append(_copied(driver))
        if page.path.endswith("1-your-first-job-array.md"):
            driver.save_screenshot(str(screenshots / "copy-button.png"))
    commands = [block.source for block in fenced_blocks(TUTORIAL) if block.language == "bash"]
    assert [text.rstrip("\n") for text in copied] == [text.rstrip("\n") for text in commands]


def _shown_outputs(driver: Any) -> list[tuple[str, str]]:
    """Each output block on the page: (its label, its text), tabs clicked to show theirs."""
    from selenium.webdriver.common.by import By

    shown = []
    article = driver.find_element(By.CSS_SELECTOR, "article")
    for block in article.find_elements(By.CSS_SELECTOR, ".highlight"):
        title = block.find_elements(By.CSS_SELECTOR, ".filename")
        if not title or not title[0].get_attribute("textContent").startswith("output"):
            continue
        tab = driver.execute_script(
            "const block = arguments[0].closest('.tabbed-block');"
            "if (!block) return null;"
            "const set = block.closest('.tabbed-set');"
            "const index = [...block.parentNode.children].indexOf(block);"
            "return set.querySelectorAll(':scope > .tabbed-labels > label')[index];",
            block,
        )
        label = title[0].get_attribute("textContent")
        if tab is not None:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", tab)
            tab.click()
            assert block.is_displayed(), tab.text
            label = tab.text
        code = block.find_element(By.CSS_SELECTOR, "code").get_attribute("textContent")
        shown.append((label, code))
    return shown


def test_every_output_carries_its_label_and_each_tab_shows_its_own(
    browser: tuple[Any, str], screenshots: Path
) -> None:
    for page in PAGES:
        expected = []
        for _, _, shown in paired(page.source):
            labels = hooks.output_labels([output.conditions for output in shown.outputs])
            for output, label in zip(shown.outputs, labels, strict=True):
                title = (f"output: {label}" if label else "output") if len(labels) == 1 else label
                expected.append((title, output.source))
        driver = _open(browser, page.path)
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        found = [(label, text.rstrip("\n")) for label, text in _shown_outputs(driver)]
        assert found == [(label, text.rstrip("\n")) for label, text in expected], page.path
    episode = next(page.path for page in PAGES if "2-dependencies" in page.path)
    for size, name in ((DESKTOP, "episode-2-version-tabs"), (PHONE, "episode-2-phone")):
        _screenshot(_open(browser, episode, size), ".tabbed-set", screenshots / f"{name}.png")


def _screenshot(driver: Any, selector: str, target: Path) -> None:
    """The viewport with the first ``selector`` in its middle, its first tab chosen."""
    driver.execute_script(
        "const shown = document.querySelector(arguments[0]);"
        "shown.querySelector('.tabbed-labels > label')?.click();"
        "shown.scrollIntoView({block: 'center'});",
        selector,
    )
    time.sleep(1)  # the header's title slides in as the page scrolls: a still picture
    driver.save_screenshot(str(target))


def test_the_diagrams_are_drawn_as_svg(browser: tuple[Any, str], screenshots: Path) -> None:
    for page in PAGES:
        diagrams = _fences(page.markdown, "mermaid")
        if not diagrams:
            continue
        driver = _open(browser, page.path)

        def drawn() -> list[str]:
            svgs = [svg for svg in shadow_svgs(driver) if 'id="__mermaid_' in svg]  # noqa: B023
            return svgs if len(svgs) == len(diagrams) else []  # noqa: B023

        svgs = waited(drawn, what=f"{len(diagrams)} diagrams drawn on {page.path}")
        for diagram, svg in zip(diagrams, svgs, strict=True):
            title = re.search(r"accTitle: (.*)", diagram)
            assert title is not None
            assert title[1] in svg
            assert "afterany" in svg
        _screenshot(driver, "div.mermaid", screenshots / f"diagram-{Path(page.path).stem}.png")


def test_every_page_fits_a_phone_and_loads_nothing_from_elsewhere(
    site: Path, browser: tuple[Any, str], screenshots: Path
) -> None:
    driver, base = browser
    pages = sorted(
        str(path.relative_to(site))
        for path in site.rglob("*.html")
        if path.name != "404.html" and "assets" not in path.parts
    )
    assert len(pages) >= len(PAGES) + 12
    for page in pages:
        driver = _open(browser, page, PHONE)
        width, viewport = driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert width <= viewport, f"{page}: {width} px wide at a phone's {viewport}"
        menu = driver.find_element("css selector", "label.md-header__button[for='__drawer']")
        assert menu.is_displayed(), page
        loaded = driver.execute_script(
            "return performance.getEntriesByType('resource').map(entry => entry.name)"
        )
        assert [url for url in loaded if not url.startswith(base)] == [], page
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], page
        if page in {"guide/index.html", "tutorial.html"}:
            name = "guide-home" if page.startswith("guide") else "lesson-home"
            driver.save_screenshot(str(screenshots / f"{name}-phone.png"))


def test_search_finds_a_word_of_the_lesson(browser: tuple[Any, str]) -> None:
    driver = _open(browser, "index.md")
    driver.find_element("css selector", "label.md-search__icon, .md-search__input").click()
    driver.find_element("css selector", "input.md-search__input").send_keys(
        "DependencyNeverSatisfied"
    )

    def found() -> list[str]:
        items = driver.find_elements("css selector", ".md-search-result__item a")
        return [item.get_attribute("href") for item in items]

    assert any("2-dependencies" in link for link in waited(found, what="search results"))
