"""GraphiQL in headless Chromium: loads from Troika alone and runs the README's query with an
operator key pasted into its Headers tab."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import Troika, screenshots_dir


def paste_key(page: Page, key: str) -> None:
    page.get_by_role("button", name="Headers", exact=True).click()
    editor = page.locator(".graphiql-editor-tool .graphiql-editor").last
    editor.click()
    page.keyboard.insert_text('{"Authorization": "Bearer ' + key + '"}')


def test_graphiql_runs_the_readme_query_with_a_pasted_key(page: Page, troika: Troika) -> None:
    page.goto(f"{troika.url}/graphql")
    expect(page).to_have_title("Troika · GraphiQL")
    expect(page.locator(".graphiql-query-editor")).to_contain_text("+8613800000001")  # the example
    paste_key(page, troika.admin_key)
    page.locator(".graphiql-execute-button").click()
    result = page.locator(".result-window")
    expect(result).to_contain_text('"APP_USER_ID"')
    expect(result).to_contain_text("APP phone verified by SMS")
    page.screenshot(path=screenshots_dir() / "graphiql.png")


def test_without_a_key_graphiql_answers_with_the_code(page: Page, troika: Troika) -> None:
    page.goto(f"{troika.url}/graphql")
    page.locator(".graphiql-execute-button").click()
    expect(page.locator(".result-window")).to_contain_text("UNAUTHENTICATED")
