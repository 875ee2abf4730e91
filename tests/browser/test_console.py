"""The operator console in headless Chromium: sign in, find a demo person, see their identity
graph drawn, undo a merge and see it redrawn; what a key may not do is not offered."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Troika, screenshots_dir

PHONE = "+8613800000001"  # demo person 1: a mini program user and an APP user, merged by the phone


def sign_in(page: Page, troika: Troika, key: str) -> None:
    page.goto(f"{troika.url}/console")
    page.fill("#key", key)
    page.click("#sign-in button[type=submit]")


def find(page: Page, value: str, user_id: int) -> None:
    page.fill("#value", value)
    page.click("#find button[type=submit]")
    expect(page.locator("#person")).to_be_visible()
    expect(page.locator("#graph-title")).to_have_text(f"user {user_id}")


def graph(page: Page) -> dict[str, Any]:
    """What cytoscape drew: the nodes' and edges' labels, and which users sit inside which."""
    drawn: dict[str, Any] = page.evaluate(
        """() => {
          const cy = window.troikaConsole.cy;
          return {
            nodes: cy.nodes().map(n => n.data('label')),
            parents: cy.nodes().filter(n => n.isChild())
              .map(n => [n.data('label'), n.parent().data('label')]),
            edges: cy.edges().map(e => [e.source().data('label'), e.target().data('label'), e.data('label')]),
            rendered: cy.nodes().every(n => n.renderedBoundingBox().w > 0),
          };
        }"""
    )
    return drawn


def graph_text(page: Page) -> str:
    return "\n".join(page.locator("#graph-text li").all_text_contents())


def test_an_operator_finds_a_person_sees_their_graph_and_undoes_a_merge(page: Page, troika: Troika) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, troika, troika.admin_key)
    expect(page.locator("#who")).to_contain_text("admin")
    find(page, PHONE, 1)

    drawn = graph(page)
    assert drawn["rendered"]
    assert {"User 1", "User 2 · merged in #1"} <= set(drawn["nodes"])
    assert ["User 2 · merged in #1", "User 1"] in drawn["parents"]  # the absorbed user inside its survivor
    kinds = {target.split("\n")[0] for _source, target, _label in drawn["edges"]}
    assert {"PHONE", "UNIONID", "APP_USER_ID", "OPENID"} <= kinds
    phone_link = next(e for e in drawn["edges"] if e[1].startswith("PHONE"))
    assert phone_link[0] == "User 2 · merged in #1"  # linked to the APP user, who brought it
    assert phone_link[2].startswith("demo · ")  # the rule, the time …
    assert "APP phone verified by SMS" in phone_link[2]  # … and the source
    assert PHONE in graph_text(page)  # this key reads PII
    expect(page.locator("#orders")).to_contain_text("MP1001")
    expect(page.locator("#consents")).to_contain_text("MARKETING")
    expect(page.locator("#timeline")).to_contain_text("merge #1: user 2 into user 1")
    expect(page.locator("#summary")).to_contain_text("美食推荐")
    page.screenshot(path=screenshots_dir() / "console.png")  # what docs/images/console.png shows

    page.click("button[data-merge='1']")
    expect(page.locator("#notice")).to_contain_text("Merge #1 undone: user 2")
    redrawn = graph(page)
    assert redrawn["parents"] == []  # nobody inside user 1 any more
    assert ["User 2", "User 1", redrawn["edges"][-1][2]] in redrawn["edges"]
    assert any(label.startswith("merge #1 undone") for *_ends, label in redrawn["edges"])
    phone_now = next(e for e in redrawn["edges"] if e[1].startswith("PHONE"))
    assert phone_now[0] == "User 2"  # the phone went back with the user who brought it
    assert phone_now[2].startswith("back after unmerge #1")
    expect(page.locator("#merges")).to_contain_text("undone")
    expect(page.locator("button[data-merge]")).to_have_count(0)
    page.screenshot(path=screenshots_dir() / "console-unmerged.png", full_page=True)

    page.select_option("#kind", "APP_USER_ID")
    find(page, "A100001", 2)  # the restored user, a person of their own again
    restored = graph(page)
    assert "User 2" in restored["nodes"]
    assert restored["parents"] == []


def test_a_viewer_sees_masked_phones_and_no_undo(page: Page, troika: Troika) -> None:
    sign_in(page, troika, troika.viewer_key)
    find(page, "+8613800000004", 7)
    expect(page.locator("#pii-note")).to_contain_text("masked")
    assert "138****0004" in graph_text(page)
    assert "+8613800000004" not in page.content()
    expect(page.locator("button[data-merge]")).to_have_count(0)
    expect(page.locator("#merges")).to_contain_text("undoing needs the operator role")


def test_errors_show_their_code_and_trace_id(page: Page, troika: Troika) -> None:
    sign_in(page, troika, "trk_op_not-a-key")
    expect(page.locator("#error")).to_contain_text("UNAUTHENTICATED")
    expect(page.locator("#error")).to_contain_text("traceId")
    expect(page.locator("#console")).to_be_hidden()
    sign_in(page, troika, troika.admin_key)
    page.select_option("#kind", "ID")
    page.fill("#value", "not-a-number")
    page.click("#find button[type=submit]")
    expect(page.locator("#error")).to_contain_text("BAD_USER_INPUT")
    expect(page.locator("#error .trace")).to_contain_text("traceId")


def test_the_key_is_kept_for_the_tab_only(page: Page, troika: Troika) -> None:
    sign_in(page, troika, troika.admin_key)
    expect(page.locator("#console")).to_be_visible()
    page.reload()
    expect(page.locator("#console")).to_be_visible()  # the same tab: still signed in
    other = page.context.new_page()
    other.goto(f"{troika.url}/console")
    expect(other.locator("#sign-in")).to_be_visible()  # another tab asks again
    assert other.evaluate("() => localStorage.length") == 0


UNLINK = 'mutation { unlinkIdentity(userId: "9", identity: {kind: APP_USER_ID, value: "A100005"}) { id } }'


def test_a_closed_link_stays_in_the_picture(page: Page, troika: Troika) -> None:
    troika.graphql(UNLINK)
    sign_in(page, troika, troika.admin_key)
    find(page, "+8613800000005", 9)
    closed = next(e for e in graph(page)["edges"] if e[1].startswith("APP_USER_ID"))
    assert closed[2].startswith("closed · demo · ")
