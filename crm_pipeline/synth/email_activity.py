"""The email list of one brand and what the ESP logged: subscribers, sends, opens, clicks.

Campaigns go out weekly to a random segment of the people subscribed at the time; each
subscriber opens with their own propensity that fades with list age, clicks some opens,
and the unsubscribe / bounce events match the subscriber's final status. About 30% of
subscribers never buy (membership roles are drawn independently).

Engagement follows buying, as it does for real shoppers: after a buyer's silent dropout
(`Orders.dropout_at`, the end of their BG/NBD purchase process) they open only
`AFTER_DROPOUT_FACTOR` as often (clicks follow opens, so they fall alike), and in the
`BEFORE_PURCHASE_DAYS` before one of their purchases they open `BEFORE_PURCHASE_FACTOR` times
as often. Subscribers who never buy keep their plain propensity.

Where a subscription comes from decides what ties it to the rest of a person's records, as
with a real shop and ESP: an opt-in ticked on the account (`account`) reaches the ESP with the
account's own address (the platform syncs it), and a form on the brand's site (`popup`,
`preference_center`, and the account page's opt-in, ticked while logged in) is seen by the site's
tracker, which records the address on the visitor's cookie for the sign-ups whose visitor allowed
tracking (`FORM_TRACKED_SHARE`; see `browsing`). Imports and in-store sign-ups carry only the address.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.synth import reference as ref
from crm_pipeline.synth import variations as var
from crm_pipeline.synth.columns import STR, choice, expand, ids, join, num_str, pick, table_take
from crm_pipeline.synth.commerce import Accounts, BrandContext, Orders, person_email
from crm_pipeline.synth.landed import LandedFile
from crm_pipeline.synth.population import Population
from crm_pipeline.synth.timestamps import DAY, ISO

CAMPAIGN_EVERY_DAYS = 7
SEGMENT_SHARE = 0.28           # chance an eligible subscriber is in a campaign's segment
STATUSES = ("subscribed", "unsubscribed", "bounced", "pending")
STATUS_WEIGHTS = (68, 17, 5, 10)
SOURCES = ("popup", "preference_center", "account", "in_store", "import")
EVENT_TYPES = ("send", "open", "click", "bounce", "unsubscribe", "complaint")
AFTER_DROPOUT_FACTOR = 0.2     # open propensity of a buyer who has silently stopped buying
BEFORE_PURCHASE_DAYS = 14
BEFORE_PURCHASE_FACTOR = 1.5   # open propensity in the days before a purchase
FORM_SOURCES = (0, 1, 2)       # popup, preference_center, account: forms on the brand's site
FORM_TRACKED_SHARE = 0.65      # sign-ups whose visitor allowed the site's tracker (cookie consent)


def _preferences() -> list[str]:
    """A small set of preference documents (JSON object text) subscribers pick from."""
    out = []
    for i, freq in enumerate(ref.EMAIL_FREQUENCIES):
        for j in range(8):
            topics = [ref.EMAIL_TOPICS[(j + k * 3) % len(ref.EMAIL_TOPICS)] for k in range(1 + j % 3)]
            out.append(json.dumps({"topics": topics, "frequency": freq}))
    return out


PREFERENCES = _preferences()


@dataclass
class Signups:
    """Sign-up forms submitted on the brand's site and seen by its tracker: the address typed, on a cookie."""

    person: np.ndarray
    pb: np.ndarray
    at: np.ndarray
    email: pa.Array
    form: np.ndarray  # the source code of the form (see FORM_SOURCES); the account's is filled in logged in

    def where(self, keep: np.ndarray) -> Signups:
        return Signups(self.person[keep], self.pb[keep], self.at[keep], self.email.filter(pa.array(keep)),
                       self.form[keep])


@dataclass
class Clicks:
    """Email clicks that may continue as a web session (and the site's tracked sign-up forms)."""

    person: np.ndarray
    pb: np.ndarray
    at: np.ndarray
    url: pa.Array
    email: pa.Array
    signups: Signups | None = None


def site(brand: str) -> str:
    return f"https://www.{brand.replace('_', '-')}.example"


def purchase_within(orders: Orders, pb: np.ndarray, at: np.ndarray, days: int) -> np.ndarray:
    """Whether membership row `pb` has a purchase in [at, at + days): one search over (row, time) keys."""
    if orders.pb.size == 0:
        return np.zeros(pb.size, bool)
    t0 = int(orders.ordered_at.min())
    key = np.sort((orders.pb.astype(np.int64) << 32) | (orders.ordered_at - t0))   # row, then seconds from t0
    probe = (pb.astype(np.int64) << 32) | np.clip(at - t0, 0, None)
    found = key[np.minimum(np.searchsorted(key, probe), key.size - 1)]
    return ((found >> 32) == pb) & (found >= probe) & ((found & 0xFFFFFFFF) + t0 - at < days * DAY)


def build_email(ctx: BrandContext, accounts: Accounts, orders: Orders) -> tuple[list[LandedFile], Clicks]:
    rng = ctx.rng("email")
    mem, pop = ctx.mem, ctx.pop
    pb = ctx.rows[mem.subscriber[ctx.rows]]
    n = pb.size
    person = mem.person[pb]
    joined = mem.joined_at[pb]
    signup = np.where(mem.buyer[pb], joined + rng.integers(-30 * DAY, 60 * DAY, n), joined)
    signup = np.where(signup < ctx.t_start, ctx.t_start + rng.integers(0, 30 * DAY, n), signup)
    signup = np.minimum(signup, ctx.t_end - 3600)
    status = choice(rng, n, STATUS_WEIGHTS)
    signup = np.where(status == 3, ctx.t_end - rng.integers(3600, 30 * DAY, n), signup)
    stop = signup + (rng.random(n) * (ctx.t_end - signup)).astype(np.int64)  # unsubscribe / bounce time

    # Campaigns and the sends each subscriber got.
    n_camp = max(1, (ctx.t_end - ctx.t_start) // (CAMPAIGN_EVERY_DAYS * DAY))
    camp_at = ctx.t_start + np.arange(n_camp) * CAMPAIGN_EVERY_DAYS * DAY + rng.integers(9 * 3600, 18 * 3600, n_camp)
    letter = ctx.brand.removeprefix("brand_").upper()
    camp_id = ids(f"{letter}-CMP-", np.arange(1, n_camp + 1), 4)
    camp_url = join(site(ctx.brand), "/campaign/", num_str(np.arange(1, n_camp + 1)),
                    "?utm_source=email&utm_campaign=", camp_id)
    lo = np.searchsorted(camp_at, signup, side="left")
    # Bounced: the bounce happens on a campaign inside the subscription; none in range -> still subscribed.
    hi_stop = np.searchsorted(camp_at, stop, side="left")
    bounced = (status == 2) & (hi_stop > lo)
    status = np.where((status == 2) & ~bounced, 0, status)
    bounce_camp = np.where(bounced, lo + (rng.random(n) * np.maximum(hi_stop - lo, 1)).astype(np.int64), 0)
    stop = np.where(bounced, camp_at[np.minimum(bounce_camp, n_camp - 1)] + 45, stop)
    end = np.where((status == 1) | (status == 2), stop, ctx.t_end)
    hi = np.where(status == 3, lo, np.searchsorted(camp_at, end, side="left"))
    eligible = np.maximum(hi - lo, 0)
    k = rng.binomial(eligible, SEGMENT_SHARE)
    owner, _ = expand(k)
    camp = lo[owner] + (rng.random(owner.size) * eligible[owner]).astype(np.int64)
    key = np.sort(owner.astype(np.int64) * n_camp + camp)
    key = key[np.concatenate([[True], np.diff(key) != 0])] if key.size else key   # one send per campaign
    send_owner, send_camp = key // n_camp, key % n_camp
    send_at = camp_at[send_camp] + rng.integers(0, 1800, send_camp.size)

    # Opens fade with list age, drop after the buyer's dropout, rise before a purchase; clicks follow some opens.
    propensity = rng.beta(1.2, 2.5, n)
    fade = rng.uniform(180, 720, n) * DAY
    send_pb = pb[send_owner]
    buying = np.where(send_at > orders.dropout_at[send_pb], AFTER_DROPOUT_FACTOR,
                      np.where(purchase_within(orders, send_pb, send_at, BEFORE_PURCHASE_DAYS),
                               BEFORE_PURCHASE_FACTOR, 1.0))
    p_open = propensity[send_owner] * np.exp(-(send_at - signup[send_owner]) / fade[send_owner]) * buying
    opened = rng.random(send_owner.size) < p_open
    open_at = send_at + rng.exponential(8 * 3600, send_owner.size).astype(np.int64) + 5
    click_p = rng.beta(1.0, 4.0, n)[send_owner]
    clicked = opened & (rng.random(send_owner.size) < click_p)
    click_at = open_at + rng.exponential(300, send_owner.size).astype(np.int64) + 2
    complained = opened & (rng.random(send_owner.size) < 0.002)

    sub_rows = np.flatnonzero(status == 1)
    unsub_camp = np.searchsorted(camp_at, stop[sub_rows], side="right") - 1
    b_rows = np.flatnonzero(bounced)
    o_idx, c_idx = np.flatnonzero(opened), np.flatnonzero(clicked)
    m_idx = np.flatnonzero(complained)
    ev_owner = np.concatenate([send_owner, send_owner[o_idx], send_owner[c_idx], send_owner[m_idx], b_rows, b_rows,
                               sub_rows])
    ev_camp = np.concatenate([send_camp, send_camp[o_idx], send_camp[c_idx], send_camp[m_idx], bounce_camp[b_rows],
                              bounce_camp[b_rows], unsub_camp])
    ev_type = np.concatenate([np.full(send_owner.size, 0), np.full(o_idx.size, 1), np.full(c_idx.size, 2),
                              np.full(m_idx.size, 5), np.full(b_rows.size, 0), np.full(b_rows.size, 3),
                              np.full(sub_rows.size, 4)])
    ev_at = np.concatenate([send_at, open_at[o_idx], click_at[c_idx], open_at[m_idx] + 3600,
                            stop[b_rows] - 40, stop[b_rows], stop[sub_rows]])
    ev_camp = np.where(ev_camp >= lo[ev_owner], ev_camp, -1)   # an unsubscribe before any campaign
    keep = ev_at < ctx.t_end
    ev_owner, ev_camp, ev_type, ev_at = ev_owner[keep], ev_camp[keep], ev_type[keep], ev_at[keep]
    order = np.lexsort((ev_type, ev_at))
    ev_owner, ev_camp, ev_type, ev_at = ev_owner[order], ev_camp[order], ev_type[order], ev_at[order]

    # Subscriber rows.
    base_email = person_email(pop, person, rng, 0.3)
    email = var.email_variant(base_email, rng)
    if ctx.b == 0:
        sub_id = ids("sub_", np.argsort(np.argsort(signup, kind="stable")) + 1, 8)
    elif ctx.b == 1:
        sub_id = num_str(5_000_000 + np.argsort(np.argsort(signup, kind="stable")))
    else:
        sub_id = base_email   # this ESP has no ids of its own: the email is the key
    src_w = np.array([35, 10, 25, 5, 10], dtype=float)
    source = choice(rng, n, src_w)
    if ctx.is_till_brand:
        source = np.where(rng.random(n) < 0.35, 3, source)
    else:
        source = np.where(source == 3, 0, source)
    source = np.where((source == 2) & (accounts.of_pb[pb] < 0), 0, source)
    base_email, email = _account_opt_in(accounts, pop, pb, person, source == 2, base_email, email)
    if ctx.b == 2:
        sub_id = base_email
    subscribed_at = np.where(status == 3, -1, signup)
    updated = np.where(status == 3, signup, np.where(status == 0, signup + (rng.random(n) * 0.2 * (ctx.t_end - signup)).astype(np.int64), stop))
    updated = np.minimum(updated, ctx.t_end - 1)
    named = rng.random(n) < 0.6
    columns = {
        "subscriber_id": sub_id, "email": email, "status": table_take(STATUSES, status),
        "subscribed_at": ctx.ts(signup, person, rng, valid=subscribed_at >= 0),
        "unsubscribed_at": ctx.ts(stop, person, rng, valid=status == 1),
        "source": table_take(SOURCES, source),
        "country": pick(rng.random(n) < 0.7, var.country_variant(pop.country[person], rng), pa.nulls(n, STR)),
        "first_name": pick(named, var.first_name_variant(pop.first[person], rng), pa.nulls(n, STR)),
        "last_name": pick(named, var.last_name_variant(pop.last[person], rng), pa.nulls(n, STR)),
        "preferences": pick(rng.random(n) < 0.8, table_take(PREFERENCES, rng.integers(0, len(PREFERENCES), n)),
                            pa.nulls(n, STR)),
        "updated_at": ctx.ts(updated, person, rng),
    }
    show = np.argsort(signup, kind="stable")
    s_idx = pa.array(show)
    styles = {"subscribed_at": ISO, "unsubscribed_at": ISO, "updated_at": ISO}
    subscribers = LandedFile(ctx.brand, "subscribers", "subscribers.csv",
                             {k_: v.take(s_idx) for k_, v in columns.items()}, person[show], styles)

    # Event rows.
    m = ev_owner.size
    ev_person = person[ev_owner]
    o = pa.array(ev_owner)
    no_id = rng.random(m) < 0.05
    ev_sub = pick(no_id, pa.nulls(m, STR), sub_id.take(o))
    ev_email = email.take(o) if ctx.b == 1 else pick(no_id, email.take(o), pa.nulls(m, STR))
    camp_idx = pa.array(np.maximum(ev_camp, 0), mask=ev_camp < 0)
    url = pick(ev_type == 2, camp_url.take(camp_idx), pa.nulls(m, STR))
    prefix = {0: "em_", 1: "esp-", 2: "E"}.get(ctx.b, f"{letter}E")
    ev_columns = {
        "event_id": ids(prefix, np.arange(1, m + 1), 10), "subscriber_id": ev_sub, "email": ev_email,
        "campaign_id": camp_id.take(camp_idx), "event_type": table_take(EVENT_TYPES, ev_type),
        "occurred_at": ctx.ts(ev_at, ev_person, rng), "url": url,
    }
    name = "email_events.jsonl" if ctx.b == 1 else "email_events.csv"
    events = LandedFile(ctx.brand, "email_events", name, ev_columns, ev_person, {"occurred_at": ISO})

    clicks = np.flatnonzero(ev_type == 2)
    forms = np.flatnonzero(np.isin(source, FORM_SOURCES)
                           & (ctx.rng("email", "forms").random(n) < FORM_TRACKED_SHARE))
    signups = Signups(person[forms], pb[forms], signup[forms], email.take(pa.array(forms)), source[forms])
    return [subscribers, events], Clicks(ev_person[clicks], pb[ev_owner[clicks]], ev_at[clicks],
                                         url.take(pa.array(clicks)), base_email.take(pa.array(ev_owner[clicks])),
                                         signups)


def _account_opt_in(accounts: Accounts, pop: Population, pb: np.ndarray, person: np.ndarray, opt_in: np.ndarray,
                    base_email: pa.Array, email: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Subscriptions ticked on the account carry the account's address (as the platform holds it), where that
    is one of the person's own addresses (not blank, not a shop's or a placeholder address)."""
    acct = accounts.of_pb[pb]
    written = accounts.email.take(pa.array(np.maximum(acct, 0)))
    address = pc.utf8_lower(pc.utf8_trim_whitespace(written))
    idx = pa.array(person)
    own = pc.fill_null(pc.or_kleene(pc.equal(address, pop.email.take(idx)), pc.equal(address, pop.email2.take(idx))),
                       False).to_numpy(zero_copy_only=False)
    use = opt_in & (acct >= 0) & own
    return pick(use, address, base_email), pick(use, written, email)
