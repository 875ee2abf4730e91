"""GraphiQL in headless Chromium: loads from Troika alone, runs the README's query with an
operator key pasted into its Headers tab, and receives a subscription's events over WebSocket."""

from __future__ import annotations

import re
from urllib.parse import quote

from playwright.sync_api import Page, expect

from tests.browser.conftest import Troika, screenshots_dir

SUBSCRIBE = 'subscription { changes(topics: ["MEMBERSHIP"]) { userId topic cursor at } }'
ADJUST = 'mutation { adjustPoints(userId: "3", points: 10, reason: "ui", sourceChannel: APP) { points } }'


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


def test_a_subscription_in_graphiql_receives_the_change(page: Page, troika: Troika) -> None:
    page.goto(f"{troika.url}/graphql?q={quote(SUBSCRIBE)}")  # a link that carries the query
    expect(page.locator(".graphiql-query-editor")).to_contain_text("subscription")
    paste_key(page, troika.admin_key)
    with page.expect_websocket() as opened:
        page.locator(".graphiql-execute-button").click()
    socket = opened.value
    assert socket.url == troika.url.replace("http://", "ws://") + "/graphql"
    received: list[str | bytes] = []
    socket.on("framereceived", lambda frame: received.append(frame))
    expect(page.locator(".graphiql-execute-button")).to_have_attribute("aria-label", re.compile("^Stop"))
    result = page.locator(".result-window")
    for _attempt in range(20):  # the subscription follows from when the server started it: change
        troika.graphql(ADJUST)  # something until an event shows (usually the first change)
        try:
            expect(result).to_contain_text('"topic": "MEMBERSHIP"', timeout=1000)
            break
        except AssertionError:
            continue
    expect(result).to_contain_text('"topic": "MEMBERSHIP"')
    expect(result).to_contain_text('"userId": "3"')
    assert received
    assert all(isinstance(frame, str) for frame in received), "every WebSocket message is a text frame"
    page.screenshot(path=screenshots_dir() / "graphiql-subscription.png")
