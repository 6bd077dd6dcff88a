"""Email and browsing follow each buyer's hidden purchase process, so engagement carries churn signal."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from crm_pipeline.synth.browsing import BROWSE_AFTER_DROPOUT_DAYS, build_web
from crm_pipeline.synth.channel_mix import person_mixes
from crm_pipeline.synth.columns import stream
from crm_pipeline.synth.commerce import STILL_ACTIVE, BrandContext, build_customers, build_orders
from crm_pipeline.synth.email_activity import build_email, purchase_within
from crm_pipeline.synth.memberships import build_memberships
from crm_pipeline.synth.population import build_population
from crm_pipeline.synth.products import build_catalogue
from crm_pipeline.synth.timestamps import DAY, epoch_seconds

PEOPLE, SEED = 4000, 5


@pytest.fixture(scope="module")
def brand_a():
    """One brand built the way `generate` builds it, keeping the hidden dropout times."""
    t_end = epoch_seconds(dt.date(2025, 6, 30))
    t_start = t_end - 730 * DAY
    pop = build_population(PEOPLE, stream(SEED, "population"), t_start, t_end)
    mem = build_memberships(PEOPLE, 3, stream(SEED, "memberships"), t_start, t_end)
    ctx = BrandContext(0, "brand_a", pop, mem, mem.of_brand(0), t_start, t_end, SEED, False, 0.0,
                       person_mixes(SEED, pop.n))
    cat, _ = build_catalogue(0, "brand_a", ctx.rng("catalogue"), t_end)
    accounts, _ = build_customers(ctx)
    orders, _, _ = build_orders(ctx, accounts, cat)
    email_files, clicks = build_email(ctx, accounts, orders)
    web_files = build_web(ctx, accounts, orders, clicks, cat)
    dropout = np.full(PEOPLE, STILL_ACTIVE, dtype=np.int64)      # per person, for this brand
    dropout[mem.person[ctx.rows]] = orders.dropout_at[ctx.rows]
    buyer = np.zeros(PEOPLE, bool)
    buyer[mem.person[ctx.rows]] = mem.buyer[ctx.rows]
    return ctx, orders, dropout, buyer, _events(email_files[1:]), _events(web_files)


def _events(files) -> pd.DataFrame:
    frame = pd.concat([pd.DataFrame({**{c: v.to_pandas() for c, v in f.columns.items()}, "person": f.person})
                       for f in files], ignore_index=True)
    when = pd.to_datetime(frame["occurred_at"], format="ISO8601", utc=True)
    frame["at"] = (when - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return frame


def test_a_buyer_drops_out_right_after_their_last_purchase(brand_a):
    ctx, orders, _, _, _, _ = brand_a
    last = pd.Series(orders.ordered_at).groupby(orders.pb).max()
    dropout = orders.dropout_at[last.index]
    dropped = dropout < STILL_ACTIVE
    assert (last.to_numpy() <= dropout).all()
    assert (last.to_numpy()[dropped] == dropout[dropped]).all()
    # Many buyers are gone by the end date, not all (BG/NBD: dropout after each purchase; buyers join all along).
    assert 0.3 < dropped.mean() < 0.9
    non_buyers = np.setdiff1d(ctx.rows, orders.pb)
    assert (orders.dropout_at[non_buyers] == STILL_ACTIVE).all()


def test_browsing_stops_a_month_after_dropout_but_not_for_non_buyers(brand_a):
    ctx, _, dropout, buyer, _, web = brand_a
    starts = web.groupby("session_id").agg(person=("person", "first"), at=("at", "min"), url=("url", "first"))
    from_email = starts["url"].str.contains("utm_source=email", regex=False)
    late = starts["at"].to_numpy() > dropout[starts["person"]] + BROWSE_AFTER_DROPOUT_DAYS * DAY + 3600
    # After a lapsed buyer's month of grace only an email click (itself rarer, see below) brings them back.
    assert late.sum() > 0 and from_email[late].all()
    # Non-buyers still browse on to the end date.
    recent = starts["at"] > ctx.t_end - 60 * DAY
    assert (~buyer[starts.loc[recent & ~from_email, "person"]]).sum() > 20
    # Buyers who are still customers browse far more per person than those who lapsed long ago.
    alive = buyer & (dropout == STILL_ACTIVE)
    lapsed = buyer & (dropout < ctx.t_end - 180 * DAY)
    last_90 = starts.loc[starts["at"] > ctx.t_end - 90 * DAY, "person"]
    per_alive = np.isin(last_90, np.flatnonzero(alive)).sum() / alive.sum()
    per_lapsed = np.isin(last_90, np.flatnonzero(lapsed)).sum() / lapsed.sum()
    assert per_alive > 5 * per_lapsed, (per_alive, per_lapsed)


def test_opens_fall_sharply_after_dropout(brand_a):
    _, _, dropout, buyer, email, _ = brand_a
    email = email[buyer[email["person"]] & (dropout[email["person"]] < STILL_ACTIVE)]
    after = email["at"].to_numpy() > dropout[email["person"]]
    kind = email["event_type"]
    # Opens follow their send within hours, so the share of sends opened before / after dropout compares rates.
    rate_before = (kind[~after] == "open").sum() / (kind[~after] == "send").sum()
    rate_after = (kind[after] == "open").sum() / (kind[after] == "send").sum()
    assert (kind[after] == "send").sum() > 1000
    assert rate_after < 0.35 * rate_before, (rate_before, rate_after)


def test_the_days_before_a_purchase_are_found_for_every_send(brand_a):
    ctx, orders, _, _, _, _ = brand_a
    rng = np.random.default_rng(0)
    probe = pd.DataFrame({"pb": rng.choice(orders.pb, 5000), "at": rng.integers(ctx.t_start, ctx.t_end, 5000)})
    bought = pd.DataFrame({"pb": orders.pb, "next_at": orders.ordered_at}).sort_values("next_at")
    expected = pd.merge_asof(probe.reset_index().sort_values("at"), bought, left_on="at", right_on="next_at",
                             by="pb", direction="forward").set_index("index").sort_index()
    gap = expected["next_at"] - expected["at"]
    want = (gap < 14 * DAY).to_numpy()   # NaN (no later purchase) compares False
    got = purchase_within(orders, probe["pb"].to_numpy(), probe["at"].to_numpy(), 14)
    assert 0 < want.sum() < want.size and (got == want).all()
