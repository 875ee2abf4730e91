"""The README and docs/ stay true: links resolve inside the repository, GraphQL examples fit the
schema, and the README's tour queries answer on the demo data."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from fastapi import FastAPI
from graphql import OperationDefinitionNode, OperationType, parse, validate
from markdown_it import MarkdownIt
from markdown_it.token import Token

from app.demo import load_demo
from graphql_schema.schema import schema
from tests.factories.auth import operator_key
from tests.helpers import Gql

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"
PAGES = [README, README_ZH, *sorted((ROOT / "docs").glob("*.md"))]
REQUIRED_PAGES = (
    "README",
    "identity",
    "channel-data",
    "permissions",
    "sync",
    "wechat",
    "security",
    "configuration",
    "operations",
    "benchmarks",
)
# What a page for users and operators never says: paths outside the repository, issue numbers.
OUTSIDE = re.compile(r"\.\./shared|/work/|\bissues?\s*#?\d+", re.IGNORECASE)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
MARKDOWN = MarkdownIt("commonmark").enable("table")


@dataclass(frozen=True)
class Link:
    page: Path
    target: str


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@cache
def _tokens(page: Path) -> list[Token]:
    return MARKDOWN.parse(page.read_text(encoding="utf-8"))


def _inline_children(page: Path) -> Iterator[Token]:
    for token in _tokens(page):
        yield from token.children or ()


def _links(page: Path) -> Iterator[Link]:
    for token in _inline_children(page):
        if token.type == "link_open":
            yield Link(page, str(token.attrs["href"]))
        elif token.type == "image":
            yield Link(page, str(token.attrs["src"]))


@cache
def _anchors(page: Path) -> frozenset[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    tokens = _tokens(page)
    seen: dict[str, int] = {}
    for opening, inline in zip(tokens, tokens[1:], strict=False):
        if opening.type != "heading_open":
            continue
        text = "".join(c.content for c in inline.children or () if c.type in ("text", "code_inline"))
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        if count:
            seen[f"{slug}-{count}"] = 1
    return frozenset(seen)


def _graphql_blocks(page: Path) -> list[str]:
    """Fenced ```graphql blocks; a partial example is fenced ```graphql fragment and not checked."""
    return [t.content for t in _tokens(page) if t.type == "fence" and t.info.strip() == "graphql"]


def _troika_commands(page: Path) -> list[str]:
    """Lines of the page's ```sh blocks that run the `troika` command."""
    blocks = [t.content for t in _tokens(page) if t.type == "fence" and t.info.strip() == "sh"]
    return [line for block in blocks for line in block.splitlines() if line.startswith(".venv/bin/troika ")]


def test_the_pages_exist() -> None:
    missing = [p for p in REQUIRED_PAGES if not (ROOT / "docs" / f"{p}.md").is_file()]
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_resolves_inside_the_repository(page: Path) -> None:
    broken = []
    for link in _links(page):
        if SCHEME.match(link.target):
            continue
        path, _, anchor = link.target.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.is_relative_to(ROOT):
            broken.append(f"{link.target}: outside the repository")
        elif not target.exists():
            broken.append(f"{link.target}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link.target}: no heading #{anchor} in {_name(target)}")
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_no_reference_outside_the_repository_or_to_issues(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    found = [m.group(0) for m in OUTSIDE.finditer(text)]
    assert not found, found


def test_one_security_page() -> None:
    titled = [
        _name(page)
        for page in PAGES
        for line in page.read_text(encoding="utf-8").splitlines()
        if re.fullmatch(r"#+ Security", line)
    ]
    assert titled == ["docs/security.md"], titled


def test_the_readmes_point_at_each_other_and_give_the_two_commands() -> None:
    first = {page: next(_links(page)).target for page in (README, README_ZH)}
    assert first == {README: "README.zh-CN.md", README_ZH: "README.md"}
    for page in (README, README_ZH):
        text = page.read_text(encoding="utf-8")
        assert "make run" in text
        assert "make test" in text
        assert "![" in text
        assert "docs/images/console.png" in text


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_graphql_examples_validate_against_the_schema(page: Path) -> None:
    problems = []
    for block in _graphql_blocks(page):
        errors = validate(schema._schema, parse(block))
        problems += [f"{block.strip()[:60]}…: {e.message}" for e in errors]
    assert not problems, problems


async def test_the_readme_tour_answers_on_the_demo_data(app: FastAPI, gql: Gql) -> None:
    """The README's queries and mutations, run as a reader runs them: `make run`'s demo data and
    its operator key (admin, pii_reader)."""
    await load_demo(app.state.db, if_empty=True, settings=app.state.settings)
    token = await operator_key(app, "admin", "pii_reader")
    ran = 0
    for page in (README, README_ZH):
        for block in _graphql_blocks(page):
            operation = parse(block).definitions[0]
            assert isinstance(operation, OperationDefinitionNode)
            if operation.operation is OperationType.SUBSCRIPTION:
                continue
            data = await gql(block, token=token)
            assert all(value is not None for value in data.values()), (block, data)
            ran += 1
    assert ran >= 4
    person = (await gql(_graphql_blocks(README)[0], token=token))["user"]
    assert len(person["identities"]) == 5


def test_the_readme_troika_commands_run_as_written(cli_env: str) -> None:
    """Each `.venv/bin/troika …` line of the README, run from the repository's root as a reader
    would (on a fresh database), succeeds."""
    commands = _troika_commands(README)
    assert commands
    for line in commands:
        done = subprocess.run(
            shlex.split(line), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, (line, done.stdout, done.stderr)
