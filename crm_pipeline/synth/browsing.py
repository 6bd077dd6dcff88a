"""On-site behaviour of one brand: cookies, sessions and events, mostly anonymous.

A person has 1-3 cookies (devices). A session is anonymous (cookie only) unless the visitor
logs in during it (customer_id and email from that event on) or arrives from an email click
(email on every event of the session). Web/app orders come with a checkout session just before
the order (product views of the basket, an add to cart, a login for account holders, checkout).
A sign-up form submitted on the site (`email_activity.Signups`) is a short session too: a page,
then the form's confirmation page, which carries the address (the tracker's identify call); the
account page's opt-in is ticked logged in, so both events carry the account.

Browse sessions of a browsing member (a steady trickle, Gamma-Poisson, from 60 days before
their first contact with the brand) run to the end date, except for a buyer who has silently
dropped out (`Orders.dropout_at`): they browse on for `BROWSE_AFTER_DROPOUT_DAYS` after their
last purchase and then stop, as lapsed shoppers do. While a buyer is a customer they also visit
at a pace set by their own purchase rate (`ALIVE_SESSIONS_PER_PURCHASE` visits per purchase
they are expected to make), and in the `PRE_PURCHASE_DAYS` before each purchase
(`PRE_PURCHASE_SESSIONS` on average): frequent buyers browse more, as real ones do. Non-buyers
(prospects, subscribers who never buy) keep only the trickle, to the end date.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.synth import reference as ref
from crm_pipeline.synth.columns import STR, choice, expand, hex_ids, ids, join, pick, table_take
from crm_pipeline.synth.commerce import Accounts, BrandContext, Orders, person_email
from crm_pipeline.synth.email_activity import Clicks, site
from crm_pipeline.synth.landed import LandedFile, quarter_labels, split_files
from crm_pipeline.synth.products import Catalogue
from crm_pipeline.synth.timestamps import DAY, ISO

EVENT_TYPES = ("page_view", "product_view", "add_to_cart", "search", "checkout")
BROWSE_SESSIONS_MEAN = 1.0
TRACKED_CHECKOUT_SHARE = 0.65  # web/app orders whose session the tracker saw (cookie consent)
EMAIL_CLICK_SESSION_SHARE = 0.6
LOGIN_SHARE = 0.15             # of browse sessions by account holders
BROWSE_AFTER_DROPOUT_DAYS = 30
ALIVE_SESSIONS_PER_PURCHASE = 3.0   # a buyer's visits while alive, per purchase they are expected to make
PRE_PURCHASE_SESSIONS = 1.0    # mean browse sessions in the PRE_PURCHASE_DAYS before each purchase
PRE_PURCHASE_DAYS = 21
PAGES = ("/", "/c/new-in", "/c/sale", "/c/women", "/c/men", "/c/home", "/stores", "/help/returns")
# The form's confirmation page, per subscriber source code: pop-up, preference centre, account page.
FORM_PAGES = ("/newsletter/subscribed", "/preferences/saved", "/account/newsletter")


def build_web(ctx: BrandContext, accounts: Accounts, orders: Orders, clicks: Clicks, cat: Catalogue
              ) -> list[LandedFile]:
    rng = ctx.rng("web")
    mem = ctx.mem
    rows = ctx.rows
    # Cookies of every member of the brand (buyers browse too, even if not "browsers").
    local = np.full(mem.person.size, -1, dtype=np.int64)
    local[rows] = np.arange(rows.size)
    n_cookies = 1 + choice(rng, rows.size, (60, 30, 10))
    cookie_start = np.cumsum(n_cookies) - n_cookies
    cookies = hex_ids(rng, int(n_cookies.sum()), 16)

    # Sessions: (membership row, start, kind, number of events, login rank, email-arrival flag).
    # 1) checkout sessions before web/app orders
    web_orders = np.flatnonzero((orders.channel <= 1)
                                & (rng.random(orders.channel.size) < TRACKED_CHECKOUT_SHARE))
    lines_per_order = np.bincount(orders.line_order, minlength=orders.ordered_at.size)
    o_lines = lines_per_order[web_orders]
    o_events = o_lines + 2                        # product views, add to cart, checkout
    o_start = orders.ordered_at[web_orders] - o_events * 75 - rng.integers(0, 300, web_orders.size)
    o_login = np.where(orders.guest[web_orders], -1, np.minimum(o_lines, rng.integers(0, o_lines + 1)))
    # 2) browse sessions of browsers, around their time with the brand
    #    (the trickle's rate holds over the whole span; a buyer's span ends a month after their dropout)
    browsers = rows[mem.browser[rows]]
    span_from = np.maximum(mem.joined_at[browsers] - 60 * DAY, ctx.t_start)
    span_to = np.minimum(ctx.t_end, orders.dropout_at[browsers] + BROWSE_AFTER_DROPOUT_DAYS * DAY)
    share = np.clip((span_to - span_from) / np.maximum(ctx.t_end - span_from, 1), 0.0, 1.0)
    n_sess = rng.poisson(rng.gamma(1.0, BROWSE_SESSIONS_MEAN, browsers.size) * share)
    b_owner, _ = expand(n_sess)
    b_from = span_from[b_owner]
    b_start = b_from + (rng.random(b_owner.size) * (span_to[b_owner] - b_from)).astype(np.int64)
    #    plus, for buyers, visits while they are customers at a pace set by their purchase rate
    first_buy = np.maximum(mem.joined_at[browsers], ctx.t_start)
    alive_days = np.maximum(span_to - first_buy, 0) / DAY
    a_owner, _ = expand(rng.poisson(ALIVE_SESSIONS_PER_PURCHASE * orders.purchase_rate[browsers] * alive_days))
    a_start = first_buy[a_owner] + (rng.random(a_owner.size) * (span_to - first_buy)[a_owner]).astype(np.int64)
    #    and research visits in the weeks before a browser's purchases
    pre_order, _ = expand(rng.poisson(PRE_PURCHASE_SESSIONS * mem.browser[orders.pb]))
    pre_start = np.maximum(orders.ordered_at[pre_order] - rng.integers(3600, PRE_PURCHASE_DAYS * DAY,
                                                                        pre_order.size), ctx.t_start)
    b_pb = np.concatenate([browsers[b_owner], browsers[a_owner], orders.pb[pre_order]])
    b_start = np.concatenate([b_start, a_start, pre_start])
    b_events = np.minimum(1 + rng.geometric(0.45, b_pb.size), 6)
    can_login = accounts.of_pb[b_pb] >= 0
    b_login = np.where(can_login & (rng.random(b_pb.size) < LOGIN_SHARE),
                       (rng.random(b_pb.size) * b_events).astype(np.int64), -1)
    # 3) sessions that start with an email click
    follow = np.flatnonzero(rng.random(clicks.pb.size) < EMAIL_CLICK_SESSION_SHARE)
    e_pb = clicks.pb[follow]
    e_start = clicks.at[follow] + rng.integers(1, 20, follow.size)
    e_events = np.minimum(rng.geometric(0.5, follow.size), 4)

    s_pb = np.concatenate([orders.pb[web_orders], b_pb, e_pb])
    s_start = np.concatenate([o_start, b_start, e_start])
    s_events = np.concatenate([o_events, b_events, e_events])
    s_kind = np.concatenate([np.zeros(web_orders.size, np.int64), np.ones(b_pb.size, np.int64),
                             np.full(follow.size, 2, np.int64)])
    s_login = np.concatenate([o_login, b_login, np.full(follow.size, -1)])
    s_ref = np.concatenate([web_orders, np.zeros(b_pb.size, np.int64), follow])
    order = np.argsort(s_start, kind="stable")
    s_pb, s_start, s_events, s_kind, s_login, s_ref = (a[order] for a in (s_pb, s_start, s_events, s_kind,
                                                                          s_login, s_ref))
    n_s = s_pb.size
    s_local = local[s_pb]
    s_cookie = cookie_start[s_local] + (rng.random(n_s) * n_cookies[s_local]).astype(np.int64)
    letter = ctx.brand.removeprefix("brand_").lower()
    session_id = ids(f"{letter}s_", np.arange(1, n_s + 1), 9)

    # Events.
    ev_s, rank = expand(s_events)
    m = ev_s.size
    kind = s_kind[ev_s]
    gap = rng.integers(10, 140, m)
    at = s_start[ev_s] + np.cumsum(gap) - (np.cumsum(gap) - gap)[np.cumsum(s_events) - s_events][ev_s]
    # Event types per kind.
    n_lines = np.where(kind == 0, s_events[ev_s] - 2, 0)
    browse_type = np.where(rank == 0, 0, choice(rng, m, (15, 55, 10, 20)))   # page, product, cart, search
    email_type = np.where(rank == 0, 0, 1)
    order_type = np.where(rank < n_lines, 1, np.where(rank == n_lines, 2, 4))
    etype = np.where(kind == 0, order_type, np.where(kind == 1, browse_type, email_type))
    # Products: the basket's lines for checkout sessions, popularity-weighted picks otherwise.
    first_line = np.cumsum(np.bincount(orders.line_order, minlength=orders.ordered_at.size))
    first_line = first_line - np.bincount(orders.line_order, minlength=orders.ordered_at.size)
    ref_order = s_ref[ev_s]
    basket_pos = np.where(etype == 2, 0, rank)
    basket_line = np.where(kind == 0, first_line[ref_order] + np.minimum(basket_pos, np.maximum(n_lines - 1, 0)), 0)
    popular = np.minimum((rng.pareto(1.2, m) * 15).astype(np.int64), cat.size - 1)
    basket_product = orders.line_product[np.minimum(basket_line, orders.line_product.size - 1)] \
        if orders.line_product.size else np.zeros(m, np.int64)
    product = np.where(kind == 0, basket_product, rng.permutation(cat.size)[popular])
    has_sku = (etype == 1) | (etype == 2)
    sku = pick(has_sku, cat.sku.take(pa.array(product)), pa.nulls(m, STR))

    base = site(ctx.brand)
    from_click = pa.array(np.where(kind == 2, s_ref[ev_s], 0), mask=kind != 2)
    e_url = clicks.url.take(from_click) if len(clicks.url) else pa.nulls(m, STR)
    page = join(base, table_take(PAGES, rng.integers(0, len(PAGES), m)))
    terms = table_take([t.replace(" ", "+") for t in ref.SEARCH_TERMS], rng.integers(0, len(ref.SEARCH_TERMS), m))
    url = pc.choose(pa.array(etype), pick((kind == 2) & (rank == 0), e_url, page),
                    join(base, "/products/", pc.fill_null(sku, "")), join(base, "/cart"),
                    join(base, "/search?q=", terms), join(base, "/checkout"))

    # Identity on the event: after a login, or for the whole of an email-click session.
    s_person = mem.person[s_pb]
    logged = (s_login[ev_s] >= 0) & (rank >= s_login[ev_s])
    acct = accounts.of_pb[s_pb[ev_s]]
    cust = accounts.customer_id.take(pa.array(np.maximum(acct, 0), mask=~logged | (acct < 0)))
    person = s_person[ev_s]
    login_email = person_email(ctx.pop, person, rng, 0.0)
    click_email = clicks.email.take(from_click) if len(clicks.email) else pa.nulls(m, STR)
    guest_checkout = (kind == 0) & (etype == 4) & orders.guest[ref_order]
    email = pick(logged | guest_checkout, login_email, pa.nulls(m, STR))
    email = pick(kind == 2, click_email, email)

    eid_prefix = f"{letter}w_"
    columns = {
        "event_id": ids(eid_prefix, np.arange(1, m + 1), 10), "cookie_id": cookies.take(pa.array(s_cookie[ev_s])),
        "session_id": session_id.take(pa.array(ev_s)), "customer_id": cust, "email": email,
        "event_type": table_take(EVENT_TYPES, etype), "url": url, "sku": sku,
        "occurred_at": ctx.ts(at, person, rng),
    }
    f = clicks.signups
    if f is not None:
        # A lapsed buyer no longer visits (see above): a later sign-up of theirs did not come through the site.
        f = f.where(f.at < orders.dropout_at[f.pb] + BROWSE_AFTER_DROPOUT_DAYS * DAY)
    if f is not None and f.pb.size:
        # Drawn from their own stream and numbered after the other sessions: the rest stays as it was.
        frng = ctx.rng("web", "forms")
        f_local = local[f.pb]
        f_cookie = cookie_start[f_local] + (frng.random(f.pb.size) * n_cookies[f_local]).astype(np.int64)
        f_ev = np.repeat(np.arange(f.pb.size), 2)
        submit = np.tile([False, True], f.pb.size)
        f_at = np.where(submit, f.at[f_ev], f.at[f_ev] - frng.integers(30, 300, f_ev.size))
        f_person = f.person[f_ev]
        k = f_ev.size
        arrival = join(base, table_take(PAGES, frng.integers(0, len(PAGES), k)))
        confirmation = join(base, table_take(FORM_PAGES, f.form[f_ev]))
        f_acct = np.where(f.form[f_ev] == 2, accounts.of_pb[f.pb[f_ev]], -1)
        form_columns = {
            "event_id": ids(eid_prefix, np.arange(m + 1, m + k + 1), 10),
            "cookie_id": cookies.take(pa.array(f_cookie[f_ev])),
            "session_id": ids(f"{letter}s_", n_s + 1 + f_ev, 9),
            "customer_id": accounts.customer_id.take(pa.array(np.maximum(f_acct, 0), mask=f_acct < 0)),
            "email": pick(submit, f.email.take(pa.array(f_ev)), pa.nulls(k, STR)),
            "event_type": table_take(EVENT_TYPES, np.zeros(k, np.int64)),
            "url": pick(submit, confirmation, arrival), "sku": pa.nulls(k, STR),
            "occurred_at": ctx.ts(f_at, f_person, frng),
        }
        columns = {c: pa.concat_arrays([v, form_columns[c].cast(v.type)]) for c, v in columns.items()}
        person, at = np.concatenate([person, f_person]), np.concatenate([at, f_at])
    keep = at < ctx.t_end
    if not keep.all():
        k = pa.array(np.flatnonzero(keep))
        columns = {c: v.take(k) for c, v in columns.items()}
        person, at = person[keep], at[keep]
    labels, names = quarter_labels(at)
    ext = "parquet" if ctx.b == 1 else "csv"
    return split_files(ctx.brand, "web_events", columns, person, labels,
                       [f"web_events_{q}.{ext}" for q in names], at, {"occurred_at": ISO})
