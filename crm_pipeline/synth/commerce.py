"""Accounts, orders and order lines of one brand, with BG/NBD-like buying behaviour.

While alive, a buyer purchases at rate lambda ~ Gamma(r=0.7, alpha=80 days); after each purchase
they drop out for good with p ~ Beta(0.8, 3). The moment of dropout (right after the last purchase,
or `STILL_ACTIVE` for a buyer alive at the end date and for non-buyers) is kept per membership row
in `Orders.dropout_at`, the buyer's rate lambda in `Orders.purchase_rate`: email engagement and
browsing follow them (see `email_activity` and `browsing`), as real shoppers who lapse stop
opening emails and visiting the site, and frequent buyers visit more often. So engagement tells
a model something about a buyer that their purchases alone do not. Buyers are acquired across the whole window (their
first purchase), Nov/Dec lift the rate (an inhomogeneous Poisson process, simulated by a time
change, which is equivalent to thinning) and spend per buyer varies (Gamma-Gamma-like tiers).
Totals add up in integer cents: subtotal - discount_total + shipping_total + tax_total = total,
where subtotal sums the positive lines (a return line of a partially refunded order is excluded).

An order's shipping, ship-to and contact details follow its channel, as a shop's systems record
them: web and app checkouts always ask for an email, ship to a country unless collected in store
(`COLLECT_SHARE`, then free) and charge shipping below the free-shipping threshold. A till sale
ships nothing and charges no shipping; it carries an email only when the buyer asks for an
e-receipt (always a guest without an account; more often a subscriber of the brand, who gives
the address they subscribed with: see `stamp_receipts`), and a phone when they are looked up
by it (loyalty; till buyers always).
A marketplace passes on its relay address for the buyer (one per buyer and brand) or none (not
for a guest), and ships to the buyer's country.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_pipeline.synth import reference as ref
from crm_pipeline.synth import variations as var
from crm_pipeline.synth.channel_mix import CHANNELS, MARKETPLACE, STORE, own_channel
from crm_pipeline.synth.columns import STR, choice, expand, hex_ids, ids, join, money, num_str, pick, table_take
from crm_pipeline.synth.landed import LandedFile, quarter_labels, split_files
from crm_pipeline.synth.memberships import Memberships
from crm_pipeline.synth.population import Address, Population
from crm_pipeline.synth.products import Catalogue
from crm_pipeline.synth.timestamps import DAY, ISO, TILL, format_date, format_ts, offsets_for

R, ALPHA = 0.7, 80.0            # lambda ~ Gamma(shape r, rate alpha) purchases per day (mean ~2.7 orders per buyer)
DROP_A, DROP_B = 0.8, 3.0       # p ~ Beta(a, b): chance to stop for good after each purchase
MAX_PURCHASES = 40
BASKET_SIZES = (35, 30, 18, 11, 6)   # weights of 1..5 lines
GUEST_SHARE_OF_ACCOUNT_HOLDERS = 0.02
JUNK_SHARE = 0.003
STORE_EMAIL_ACCOUNTS = 50
COLLECT_SHARE = 0.08            # web/app orders collected in store: no ship-to country, no shipping fee
RECEIPT_SHARE = (0.6, 0.2)      # till sales with an e-receipt: buyer on the brand's email list, other buyers
LOYALTY_PHONE_SHARE = 0.4       # till sales (not till accounts) where the buyer is looked up by phone
ONLINE_PHONE_SHARE = 0.15       # web, app and marketplace orders with a phone
RELAY_SHARE = 0.7               # marketplace orders passed on with the marketplace's relay address
RELAY_DOMAIN = "relay.marketplace.example"
STILL_ACTIVE = 2 ** 62          # dropout_at of a buyer still alive at the end date, and of non-buyers


@dataclass
class BrandContext:
    """What every generator of one brand needs to know."""

    b: int
    brand: str
    pop: Population
    mem: Memberships
    rows: np.ndarray          # this brand's membership rows
    t_start: int
    t_end: int
    seed: int
    is_till_brand: bool
    offset_share: float       # share of ISO timestamps written with a local offset
    channel_mix: np.ndarray   # per person: their own channel mix (see `channel_mix`)

    def rng(self, *names: str) -> np.random.Generator:
        from crm_pipeline.synth.columns import stream

        return stream(self.seed, self.brand, *names)

    def ts(self, secs: np.ndarray, person: np.ndarray, rng: np.random.Generator, style: str = ISO,
           valid: np.ndarray | None = None) -> pa.Array:
        offsets = offsets_for(self.pop.country[person], self.offset_share, rng) if style == ISO else None
        return format_ts(secs, style, offsets, valid)


@dataclass
class Accounts:
    pb: np.ndarray            # membership row per account
    customer_id: pa.Array
    email: pa.Array           # as written on the account (null for till accounts)
    created_at: np.ndarray
    of_pb: np.ndarray         # account row per membership row (-1: none), indexed by membership row


@dataclass
class Orders:
    person: np.ndarray
    pb: np.ndarray
    ordered_at: np.ndarray
    channel: np.ndarray       # the channel landed: from the buyer's own mix
    guest: np.ndarray
    customer_id: pa.Array     # null for guests
    email: pa.Array           # as written on the order, may be null (see `stamp_receipts`)
    receipt: np.ndarray       # till sale with an e-receipt to a subscriber of the brand (see `stamp_receipts`)
    line_order: np.ndarray    # order row of each line (positive lines only)
    line_product: np.ndarray  # catalogue row of each line
    dropout_at: np.ndarray    # per membership row: seconds of the silent dropout (STILL_ACTIVE: none)
    purchase_rate: np.ndarray  # per membership row: purchases per day while alive (0: not a buyer)


def _customer_ids(ctx: BrandContext, seq: np.ndarray, till: np.ndarray) -> pa.Array:
    if ctx.b == 0:
        return num_str(10_000_000 + seq)
    if ctx.b == 1:
        return ids("cus_", seq, 8)
    letter = ctx.brand.removeprefix("brand_").upper()
    return pick(till, ids("T", seq, 7), ids(f"{letter}C" if ctx.b > 2 else "C", seq, 7))


def order_id_for(ctx: BrandContext, seq: np.ndarray) -> pa.Array:
    """Order ids in the brand's own format (also used for orphan lines with never-issued numbers)."""
    prefix = {0: "SO", 1: "ORD-", 2: "R"}.get(ctx.b, ctx.brand.removeprefix("brand_").upper() + "O")
    return ids(prefix, seq, 9 if ctx.b != 1 else 8)


def address_at(pop: Population, person: np.ndarray, when: np.ndarray) -> Address:
    """The address a person had at `when` (before their move: the old one)."""
    cur, old = pop.address.take(person), pop.old_address.take(person)
    before = pa.array(when < pop.moved_at[person])
    return Address(*(pc.if_else(before, getattr(old, f), getattr(cur, f))
                     for f in ("line1", "line2", "city", "region", "postal_code")), cur.city_code)


def person_email(pop: Population, person: np.ndarray, rng: np.random.Generator, second_share: float) -> pa.Array:
    """The canonical email, or (for a share of those who have one) the second email."""
    use2 = pop.has_email2[person] & (rng.random(person.size) < second_share)
    return pick(use2, pop.email2.take(pa.array(person)), pop.email.take(pa.array(person)))


def build_customers(ctx: BrandContext) -> tuple[Accounts, list[LandedFile]]:
    rng = ctx.rng("customers")
    mem, pop = ctx.mem, ctx.pop
    pb = ctx.rows[mem.account[ctx.rows]]
    created = np.where(mem.buyer[pb], mem.joined_at[pb] - rng.integers(0, 2 * DAY, pb.size), mem.joined_at[pb])
    created = np.where(created < ctx.t_start, np.minimum(mem.joined_at[pb], ctx.t_start + DAY), created)
    order = np.argsort(created, kind="stable")
    pb, created = pb[order], created[order]
    n = pb.size
    person = mem.person[pb]
    till = mem.till[pb]
    customer_id = _customer_ids(ctx, np.arange(1, n + 1), till)

    email = var.email_variant(person_email(pop, person, rng, 0.25), rng)
    email = var.blank_some(email, 0.06, rng)
    store_email = np.zeros(n, bool)
    till_rows = np.flatnonzero(till)
    store_email[rng.permutation(till_rows)[:STORE_EMAIL_ACCOUNTS]] = True
    email = pick(till, pa.nulls(n, STR), email)
    email = pick(store_email, f"store.{ctx.brand}@{ctx.brand.replace('_', '')}-stores.com", email)
    phone = var.phone_variant(pop.nsn.take(pa.array(person)), pop.country[person], rng)
    phone = pick(~till & (rng.random(n) < 0.3), pa.nulls(n, STR), phone)
    junk = ~till & (rng.random(n) < JUNK_SHARE)
    email = pick(junk, pick(rng.random(n) < 0.5, "test@test.com", "noemail@example.com"), email)
    phone = pick(junk, "0000000000", phone)

    first = var.first_name_variant(pop.first[person], rng)
    last = var.last_name_variant(pop.last[person], rng)
    if ctx.is_till_brand:
        first, last = var.upper_some(first, 0.3, rng), var.upper_some(last, 0.3, rng)
    addr = address_at(pop, person, created)
    no_addr = rng.random(n) < 0.15
    updated = created + (rng.random(n) * 0.3 * (ctx.t_end - created)).astype(np.int64)
    # A mover's account was last touched before the move; the update file carries the new address.
    moving = pop.moved_at[person] > created
    updated = np.where(moving, np.maximum(created, np.minimum(updated, pop.moved_at[person] - DAY)), updated)
    columns = {
        "customer_id": customer_id, "email": email, "phone": phone, "first_name": first, "last_name": last,
        "address_line1": pick(no_addr, pa.nulls(n, STR), addr.line1),
        "address_line2": pick(no_addr, pa.nulls(n, STR), addr.line2),
        "city": pick(no_addr, pa.nulls(n, STR), addr.city),
        "region": pick(no_addr, pa.nulls(n, STR), addr.region),
        "postal_code": pick(no_addr, pa.nulls(n, STR), addr.postal_code),
        "country": var.blank_some(var.country_variant(pop.country[person], rng), 0.08, rng),
        "birth_date": format_date(pop.birth_day[person], pop.birth_known[person] & (rng.random(n) < 0.6)),
        "created_at": ctx.ts(created, person, rng),
        "updated_at": ctx.ts(updated, person, rng),
    }
    styles = {"created_at": ISO, "updated_at": ISO}
    accounts = Accounts(pb, customer_id, email, created, np.full(mem.person.size, -1, dtype=np.int64))
    accounts.of_pb[pb] = np.arange(n)
    if ctx.is_till_brand:
        return accounts, [LandedFile(ctx.brand, "customers", "customers.csv.gz", columns, person, styles)]
    files = [LandedFile(ctx.brand, "customers", "customers_full.csv", columns, person, styles)]
    # A later export of the accounts that changed: movers with their new address.
    moved = np.flatnonzero((pop.moved_at[person] > created) & (pop.moved_at[person] < ctx.t_end - DAY) & ~no_addr)
    if moved.size:
        idx = pa.array(moved)
        p = person[moved]
        when = np.minimum(pop.moved_at[p] + rng.integers(DAY, 20 * DAY, moved.size), ctx.t_end - 60)
        new = pop.address.take(p)
        delta = {k: v.take(idx) for k, v in columns.items()}
        delta.update({"address_line1": new.line1, "address_line2": new.line2, "city": new.city,
                      "region": new.region, "postal_code": new.postal_code, "updated_at": ctx.ts(when, p, rng)})
        order = np.argsort(when, kind="stable")
        o = pa.array(order)
        files.append(LandedFile(ctx.brand, "customers", "customers_updates.csv",
                                {k: v.take(o) for k, v in delta.items()}, p[order], styles))
    return accounts, files


def _season(t_start: int, days: int) -> np.ndarray:
    """Daily purchase-rate multiplier: Black Friday to Christmas lift."""
    day = (t_start // DAY + np.arange(days)).astype("datetime64[D]")
    month = day.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (day - day.astype("datetime64[M]")).astype(np.int64) + 1
    return np.where(month == 11, np.where(dom >= 20, 2.0, 1.3), np.where((month == 12) & (dom <= 24), 1.8, 1.0))


def simulate_purchases(rng: np.random.Generator, joined_at: np.ndarray, t_start: int, t_end: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Purchase times per buyer: (buyer row of each purchase, seconds, dropout seconds and
    purchase rate per day (outside the Nov/Dec lift) per buyer).

    The first purchase is at joining. A buyer drops out right after their last purchase; one whose
    last purchase would fall after the end date is still alive there (dropout `STILL_ACTIVE`).
    """
    days = (t_end - t_start) // DAY
    lam = rng.gamma(R, 1.0 / ALPHA, joined_at.size)
    p = rng.beta(DROP_A, DROP_B, joined_at.size)
    alive_for = np.minimum(rng.geometric(p), MAX_PURCHASES)
    owner, rank = expand(alive_for)
    gaps = np.where(rank == 0, 0.0, rng.exponential(1.0, owner.size) / lam[owner])
    csum = np.cumsum(gaps)
    starts = np.cumsum(alive_for) - alive_for
    within = csum - (csum[starts] - gaps[starts])[owner]
    grid = np.concatenate([[0.0], np.cumsum(_season(t_start, days))])   # cumulative intensity per day
    start_day = (joined_at - t_start) / DAY
    warped = np.interp(start_day, np.arange(days + 1), grid)[owner] + within
    keep = warped < grid[-1]
    last = (rank == alive_for[owner] - 1)[keep]
    owner, warped = owner[keep], warped[keep]
    day = np.interp(warped, grid, np.arange(days + 1))
    first = rank[keep] == 0
    # Time of day: daytime-heavy; the first purchase keeps the joining second.
    tod = np.where(rng.random(owner.size) < 0.85, rng.integers(8 * 3600, 23 * 3600, owner.size),
                   rng.integers(0, DAY, owner.size))
    secs = t_start + np.floor(day).astype(np.int64) * DAY + tod
    secs = np.where(first, joined_at[owner], np.minimum(secs, t_end - 1))
    # Dropout: right after the last purchase (the latest one: same-day times of day may be out of order).
    latest = np.full(joined_at.size, -1, dtype=np.int64)
    np.maximum.at(latest, owner, secs)
    dropped = np.zeros(joined_at.size, bool)
    dropped[owner[last]] = True
    dropout = np.where(dropped, latest, STILL_ACTIVE)
    return owner, secs, dropout, lam


def build_orders(ctx: BrandContext, accounts: Accounts, cat: Catalogue
                 ) -> tuple[Orders, list[LandedFile], list[LandedFile]]:
    rng = ctx.rng("orders")
    mem, pop = ctx.mem, ctx.pop
    buyers = ctx.rows[mem.buyer[ctx.rows]]
    owner, t, buyer_dropout, buyer_rate = simulate_purchases(rng, mem.joined_at[buyers], ctx.t_start, ctx.t_end)
    dropout_at = np.full(mem.person.size, STILL_ACTIVE, dtype=np.int64)
    dropout_at[buyers] = buyer_dropout
    purchase_rate = np.zeros(mem.person.size)
    purchase_rate[buyers] = buyer_rate
    order = np.argsort(t, kind="stable")
    owner, t = owner[order], t[order]
    n = t.size
    pb = buyers[owner]
    person = mem.person[pb]
    country = pop.country[person]
    till = mem.till[pb]
    acct = accounts.of_pb[pb]
    guest = (acct < 0) | (~till & (rng.random(n) < GUEST_SHARE_OF_ACCOUNT_HOLDERS))
    # One uniform per order picks its channel through the buyer's own mix; till buyers buy in store.
    u = rng.random(n)
    channel = np.where(till, STORE, own_channel(ctx.channel_mix[person], u))
    store, marketplace = channel == STORE, channel == MARKETPLACE
    order_id = order_id_for(ctx, np.arange(1, n + 1) + 1000)

    # Lines: basket size, products by the buyer's spend tier, quantities, line discounts.
    tier = rng.gamma(2.0, 0.5, buyers.size)[owner]
    size = 1 + choice(rng, n, BASKET_SIZES)
    line_order, rank = expand(size)
    m = line_order.size
    pos = rng.random(m) ** (1.0 / tier[line_order])
    product = np.minimum((pos * cat.size).astype(np.int64), cat.size - 1)
    qty = 1 + choice(rng, m, (85, 11, 4))
    fx = np.asarray(ref.FX)[country]
    unit = np.round(cat.price_cents[product] * fx[line_order]).astype(np.int64)
    line_discount = np.where(rng.random(m) < 0.15, np.round(unit * qty * rng.uniform(0.1, 0.3, m)), 0).astype(np.int64)

    subtotal = np.bincount(line_order, unit * qty, n).astype(np.int64)
    discount = np.bincount(line_order, line_discount, n).astype(np.int64)
    tax = np.round((subtotal - discount) * np.asarray(ref.TAX_RATES)[country]).astype(np.int64)

    age = ctx.t_end - t
    r = rng.random(n)
    status = np.where(age > 7 * DAY, 2, np.where(age > 2 * DAY, 1, 0))
    status = np.where(r < 0.03, 3, status)
    old = age > 12 * DAY
    status = np.where(old & (r >= 0.03) & (r < 0.06), 4, np.where(old & (r >= 0.06) & (r < 0.09), 5, status))
    delay = np.choose(status, [rng.integers(0, 2 * 3600, n), rng.integers(DAY, 2 * DAY, n),
                               rng.integers(3 * DAY, 7 * DAY, n), rng.integers(3600, DAY, n),
                               rng.integers(10 * DAY, 30 * DAY, n), rng.integers(10 * DAY, 30 * DAY, n)])
    updated = np.maximum(t, np.minimum(t + delay, ctx.t_end - 1))

    # Who the order says it is from, and where it goes, per channel (see the module docstring). The
    # draws are the ones this stream made before contact details followed the channel, so the
    # stream's later columns keep their bytes.
    cust = accounts.customer_id.take(pa.array(np.where(guest, 0, acct), mask=guest))
    email = var.email_variant(person_email(pop, person, rng, 0.2), rng)
    u_receipt, u_relay = rng.random(n), rng.random(n)
    phone = var.phone_variant(pop.nsn.take(pa.array(person)), country, rng)
    u_loyalty, u_phone = rng.random(n), rng.random(n)
    u_collect = rng.random(n)
    ship_to = var.country_variant(country, rng)
    # An order names its buyer by account or email (the data contract): a guest always leaves an address.
    receipt = store & (guest | (u_receipt < np.where(mem.subscriber[pb], *RECEIPT_SHARE)))
    relay = marketplace & (guest | (u_relay < RELAY_SHARE))
    email = pick(relay, _relay_addresses(ctx, person), email)
    email = pick(relay | receipt | ~(store | marketplace), email, pa.nulls(n, STR))
    has_phone = till | np.where(store, u_loyalty < LOYALTY_PHONE_SHARE, u_phone < ONLINE_PHONE_SHARE)
    phone = pick(has_phone, phone, pa.nulls(n, STR))
    collect = (channel <= 1) & (u_collect >= 1 - COLLECT_SHARE)
    ship_country = pick(~store & ~collect, ship_to, pa.nulls(n, STR))
    free_shipping = store | collect | (subtotal >= 7500)
    shipping = np.where(free_shipping, 0, np.round(595 * fx)).astype(np.int64)
    total = subtotal - discount + shipping + tax
    ordered_style = TILL if ctx.is_till_brand else ISO
    labels, names = quarter_labels(t)
    columns = {
        "order_id": order_id, "customer_id": cust, "email": email,
        "ordered_at": ctx.ts(t, person, rng, ordered_style),
        "status": table_take(("placed", "shipped", "delivered", "cancelled", "refunded", "partially_refunded"),
                             status),
        "currency": table_take(ref.CURRENCIES, country),
        "subtotal": money(subtotal), "discount_total": money(discount), "shipping_total": money(shipping),
        "tax_total": money(tax), "total": money(total), "shipping_country": ship_country,
        "channel": table_take(CHANNELS, channel), "phone": phone,
        "updated_at": ctx.ts(updated, person, rng),
    }
    styles = {"ordered_at": ordered_style, "updated_at": ISO}
    order_files = split_files(ctx.brand, "orders", columns, person, labels, [f"orders_{q}.csv" for q in names],
                              np.arange(n), styles)

    # A partially refunded order has one extra line returning one unit of its first line.
    first_line = np.cumsum(size) - size
    returned = np.flatnonzero(status == 5)
    ret_src = first_line[returned]
    all_order = np.concatenate([line_order, returned])
    all_number = np.concatenate([rank + 1, size[returned] + 1])
    all_product = np.concatenate([product, product[ret_src]])
    all_qty = np.concatenate([qty, -np.ones(returned.size, np.int64)])
    all_unit = np.concatenate([unit, unit[ret_src]])
    all_disc = money(np.concatenate([line_discount, np.zeros(returned.size, np.int64)]))
    all_disc = pick(np.concatenate([line_discount == 0, np.ones(returned.size, bool)]) & (rng.random(all_order.size) < 0.5),
                    pa.nulls(all_order.size, STR), all_disc)
    item_columns = {
        "order_id": order_id.take(pa.array(all_order)), "line_number": num_str(all_number),
        "sku": cat.sku.take(pa.array(all_product)), "quantity": num_str(all_qty),
        "unit_price": money(all_unit), "discount": all_disc,
    }
    item_files = split_files(ctx.brand, "order_items", item_columns, person[all_order], labels[all_order],
                             [f"order_items_{q}.csv" for q in names], all_order * 8 + all_number)
    facts = Orders(person, pb, t, channel, guest, cust, email, receipt & mem.subscriber[pb], line_order, product,
                   dropout_at, purchase_rate)
    return facts, order_files, item_files


def _relay_addresses(ctx: BrandContext, person: np.ndarray) -> pa.Array:
    """Per order, the marketplace's relay address for its buyer: one per buyer and brand, from its own stream."""
    buyers, of_order = np.unique(person, return_inverse=True)
    local = hex_ids(ctx.rng("orders", "relay"), buyers.size, 12)
    return join(local.take(pa.array(of_order)), f"@{ctx.brand.replace('_', '')}.{RELAY_DOMAIN}")


def stamp_receipts(orders: Orders, order_files: list[LandedFile], subscribers: LandedFile) -> None:
    """Give the e-receipts of subscribers the address they subscribed with (as written on the list, trimmed
    and lower-cased), in `orders` and in the landed order files.

    Runs after the brand's email list is drawn (that list follows the orders, see `email_activity`), so the
    list's stream is untouched. The order files hold the orders in order (`split_files` by quarter of the
    sorted order times, by order row within), so they are consecutive slices of the order rows.
    """
    sub_person = subscribers.person
    by_person = np.argsort(sub_person, kind="stable")
    address = pc.utf8_lower(pc.utf8_trim_whitespace(subscribers.columns["email"]))
    rows = np.flatnonzero(orders.receipt)
    at = by_person[np.searchsorted(sub_person[by_person], orders.person[rows])]
    assert (sub_person[at] == orders.person[rows]).all(), "an e-receipt subscriber missing from the list"
    pos = np.full(orders.person.size, 0, dtype=np.int64)
    pos[rows] = at
    orders.email = pick(orders.receipt, address.take(pa.array(pos)), orders.email)
    assert sum(f.n_rows for f in order_files) == orders.person.size
    start = 0
    for f in order_files:
        f.columns["email"] = orders.email.slice(start, f.n_rows)
        start += f.n_rows
