"""The guides in docs/guide/ stay true to the product.

- every guide exists as `<name>.zh-CN.md` and `<name>.en.md`, with the same headings (level by level),
  and the index (README.md) links each of them;
- every relative link and image resolves to a file of the repository, and every image is used and small;
- every `jieshui ...` command in a shell code block (```sh, ```bash, ```console or no language; blocks
  marked ```text show output, ```yaml and ```json data) parses with the real argument parser, the one
  `jieshui` itself builds (as tests/deploy/test_compose.py checks the compose commands);
- every `JIESHUI_...` variable a guide names exists: a field of jieshui.settings.Settings, or a variable
  the reference documentation (docs/*.md) or .env.example defines (the compose stack's secrets, the
  signing passphrase and the collector's own variables are read outside Settings).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from jieshui.cli import build_parser
from jieshui.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide"
IMAGES = GUIDE / "img"
GUIDES = ("manager", "evaluator", "operator")
LANGS = ("zh-CN", "en")
PAGES = sorted(GUIDE.glob("*.md"))
MAX_IMAGE_BYTES = 300 * 1024

SHELL_BLOCKS = {"", "sh", "bash", "shell", "console"}
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
HEADING = re.compile(r"^(#{1,6})\s+\S")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`]*`")
# shell operators that end a command: pipes, lists, redirections
COMMAND_END = re.compile(r"^(?:\|\|?|&&?|;|\d*>.*|<.*)$")
VARIABLE = re.compile(r"\bJIESHUI_[A-Z0-9_]+")


def _split(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The lines outside fenced code blocks, and each block's language and lines."""
    prose: list[str] = []
    blocks: list[tuple[str, list[str]]] = []
    current: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        fence = FENCE.match(line)
        if current is None and fence:
            current = (fence.group(2).lower(), [])
        elif current is not None and fence and not fence.group(2):
            blocks.append(current)
            current = None
        elif current is not None:
            current[1].append(line)
        else:
            prose.append(line)
    assert current is None, "a code block is not closed"
    return prose, blocks


def _headings(path: Path) -> list[str]:
    prose, _ = _split(path.read_text(encoding="utf-8"))
    return [m.group(1) for line in prose if (m := HEADING.match(line))]


def _shell_lines(lines: list[str]) -> list[list[str]]:
    """The commands of a shell block as token lists: a backslash at the end of a line continues it, and
    a quoted string may run over several lines (JSON bodies of curl)."""
    out: list[list[str]] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        pending += line
        try:
            tokens = shlex.split(pending, comments=True)
        except ValueError:  # an open quote: the command goes on
            pending += "\n"
            continue
        pending = ""
        if tokens:
            out.append(tokens)
    assert not pending.strip(), f"unterminated command: {pending!r}"
    return out


def _jieshui_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every `jieshui` command in the guides' shell blocks."""
    found: list[tuple[str, list[str]]] = []
    for page in PAGES:
        _, blocks = _split(page.read_text(encoding="utf-8"))
        for language, lines in blocks:
            if language not in SHELL_BLOCKS:
                continue
            for tokens in _shell_lines(lines):
                for i, token in enumerate(tokens):
                    if token != "jieshui" and not token.endswith("/bin/jieshui"):
                        continue
                    if i and tokens[i - 1].startswith("-"):
                        continue  # an option's value (influxd backup -database jieshui), not a command
                    argv: list[str] = []
                    for arg in tokens[i + 1 :]:
                        if COMMAND_END.match(arg):
                            break
                        argv.append(arg)
                    found.append((f"{page.name}: {shlex.join([token, *argv])}", argv))
    return found


COMMANDS = _jieshui_commands()


@pytest.mark.parametrize("name", GUIDES)
def test_every_guide_exists_in_both_languages_with_the_same_headings(name: str) -> None:
    zh, en = (GUIDE / f"{name}.{lang}.md" for lang in LANGS)
    assert zh.is_file(), zh
    assert en.is_file(), en
    zh_headings, en_headings = _headings(zh), _headings(en)
    assert len(zh_headings) > 3
    assert zh_headings == en_headings, (
        f"{zh.name} has {len(zh_headings)} headings, {en.name} {len(en_headings)}; levels: "
        f"{' '.join(zh_headings)} against {' '.join(en_headings)}"
    )


def test_no_guide_is_in_one_language_only() -> None:
    names = {p.name for p in PAGES} - {"README.md"}
    expected = {f"{name}.{lang}.md" for name in GUIDES for lang in LANGS}
    assert names == expected


def test_the_index_links_every_guide() -> None:
    index = (GUIDE / "README.md").read_text(encoding="utf-8")
    targets = set(LINK.findall(index))
    missing = {f"{name}.{lang}.md" for name in GUIDES for lang in LANGS} - targets
    assert not missing


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_images_resolve(page: Path) -> None:
    prose, _ = _split(page.read_text(encoding="utf-8"))
    broken = []
    for line in prose:
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL, or an anchor in the page
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or not path.is_relative_to(ROOT):
                broken.append(target)
    assert not broken, f"{page.name}: links that resolve to nothing: {broken}"


def test_every_image_is_used_and_small() -> None:
    used = {
        (page.parent / target).resolve()
        for page in PAGES
        for target in LINK.findall(page.read_text(encoding="utf-8"))
        if target.startswith("img/")
    }
    images = sorted(IMAGES.iterdir())
    assert images, "no screenshots"
    for image in images:
        assert image.suffix == ".png", image.name
        assert image.resolve() in used, f"{image.name} is in no guide"
        assert image.stat().st_size < MAX_IMAGE_BYTES, f"{image.name}: {image.stat().st_size} bytes"
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{image.name} is not a PNG"


def test_the_guides_quote_jieshui_commands() -> None:
    # a guard against the extraction finding nothing (a changed fence style, say)
    assert len(COMMANDS) >= 30
    assert {page.name for page in PAGES if any(where.startswith(page.name) for where, _ in COMMANDS)} >= {
        f"{name}.{lang}.md" for name in GUIDES for lang in LANGS
    }


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_jieshui_commands_parse_with_the_real_parser(where: str, argv: list[str]) -> None:
    argv = [a for a in argv if a not in ("--help", "-h")]
    parser = build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:
            pytest.fail(f"{where}\n  does not parse (exit {exc.code}): {err.getvalue().strip()}")
    assert args.command, where


def _known_variables() -> set[str]:
    known = {f"JIESHUI_{name.upper()}" for name in Settings.model_fields}
    for doc in sorted((ROOT / "docs").glob("*.md")):
        known |= set(VARIABLE.findall(doc.read_text(encoding="utf-8")))
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        name = line.partition("=")[0].strip()
        if VARIABLE.fullmatch(name):
            known.add(name)
    return {name for name in known if not name.endswith("_")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_jieshui_variable_exists(page: Path) -> None:
    known = _known_variables()
    unknown = set()
    for name in VARIABLE.findall(page.read_text(encoding="utf-8")):
        if name.endswith("_"):  # a family such as JIESHUI_INFLUX_*
            if not any(k.startswith(name) for k in known):
                unknown.add(name + "*")
        elif name not in known:
            unknown.add(name)
    assert not unknown, f"{page.name} names variables that exist nowhere: {sorted(unknown)}"
