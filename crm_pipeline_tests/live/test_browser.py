"""What a data engineer sees: headless Chromium on the running Dagster UI, after files flowed through."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
GROUPS = ("ingest", "quality", "identity", "predict", "audiences")
LOCATION_QUERY = "query { workspaceOrError { ... on Workspace { locationEntries { name } } } }"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: install Debian's `chromium` "
                                                              "package (.ci/run does) to run the browser test")


@pytest.fixture(scope="module")
def page(live_dagster):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra brings playwright")
    sync_api.expect.set_options(timeout=60_000)  # a cold UI on a busy machine
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)  # a cold UI on a busy machine
            yield page
        finally:
            browser.close()


def shoot(page, live_dagster, name: str) -> Path:
    folder = live_dagster.crm_home / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def dismiss_welcome(page) -> None:
    """The UI greets a new instance with a community dialog once; skip it as a first-time user would."""
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.click()


def test_the_asset_graph_shows_every_stage_and_the_audience_assets(live_dagster, flowed_through, page):
    from playwright.sync_api import expect

    page.goto(f"{live_dagster.url}/asset-groups")
    for group in GROUPS:
        expect(page.get_by_text(group, exact=True).first).to_be_visible()
    dismiss_welcome(page)
    shoot(page, live_dagster, "asset-graph")

    [location] = live_dagster.graphql(LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
    page.goto(f"{live_dagster.url}/locations/{location['name']}/asset-groups/audiences")
    dismiss_welcome(page)
    for name in ("audience_members", "audience_history", "profile_360", "predictions"):
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    shoot(page, live_dagster, "audiences-group")


def test_the_audience_page_shows_sizes_and_freshness(live_dagster, flowed_through, page):
    from playwright.sync_api import expect

    page.goto(f"{live_dagster.url}/assets/audience_members")
    dismiss_welcome(page)
    expect(page.get_by_text("Latest materialization")).to_be_visible()
    expect(page.get_by_text(flowed_through.today).first).to_be_visible()  # today's partition
    expect(page.get_by_text("sizes_per_brand")).to_be_visible()
    expect(page.get_by_text("brand_a:customers_recent").first).to_be_visible()
    expect(page.get_by_text("Fails if more than 26 hours since last materialization")).to_be_visible()
    expect(page.get_by_text("Passing").first).to_be_visible()  # the freshness daemon has judged it fresh
    shoot(page, live_dagster, "audience-members")

    # The across-brands sizes table is long: the UI folds it behind a button, as a user would open it.
    row = page.get_by_role("row").filter(has=page.get_by_text("sizes", exact=True))
    page.keyboard.press("Escape")  # close a toast or popover that may float over the list
    # A toast portal can still sit over the link on a slow machine; the click goes to the link itself.
    row.get_by_text("Show Markdown").dispatch_event("click")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("customers_recent", exact=True)).to_be_visible()
    expect(dialog.get_by_text("audience", exact=True).first).to_be_visible()
    page.wait_for_timeout(1000)  # let the dialog finish fading in before the picture
    shoot(page, live_dagster, "audience-sizes")
