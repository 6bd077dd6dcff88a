"""A bare transaction log (customer, day, units, amount), such as the public CDNOW sample, as contract files.

Published customer-base analyses (BG/NBD, Gamma-Gamma) use logs with no names, emails or order numbers.
`write_landing` lays one out as the data contract's landing files for one brand, so it runs through the
whole pipeline at its real dates: `customers` (one account per customer, opened on its first purchase day),
`orders` (one per transaction, delivered, in USD, with the customer's account id), `order_items` (one line
per order: the units and the amount per unit) and `products` (the one item sold).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SKU = "cd"
CURRENCY = "USD"


def read_cdnow(path: str | Path) -> pd.DataFrame:
    """The CDNOW log (whitespace-separated, no header: master id, sample id, YYYYMMDD, CDs, USD) as
    customer_id, day, quantity, amount; the sample id is the customer."""
    log = pd.read_csv(path, sep=r"\s+", header=None, names=["master_id", "customer_id", "day", "quantity", "amount"],
                      dtype={"master_id": str, "customer_id": str, "day": str})
    log["day"] = pd.to_datetime(log["day"], format="%Y%m%d")
    return log[["customer_id", "day", "quantity", "amount"]]


def write_landing(log: pd.DataFrame, landing: str | Path, *, brand: str = "cdnow") -> dict[str, int]:
    """Write `landing/<brand>/<entity>/<brand>_<entity>.csv` for the log's customers, orders, order lines and
    product; returns the rows written per entity. Timestamps are midnight UTC of the transaction's day."""
    log = log.sort_values(["customer_id", "day"], kind="stable").reset_index(drop=True)
    day = log["day"].dt.strftime("%Y%m%d")
    # Several transactions of a customer on one day stay separate orders (the models merge them into one day).
    nth = log.groupby(["customer_id", "day"]).cumcount() + 1
    order_id = log["customer_id"] + "-" + day + "-" + nth.astype(str)
    at = log["day"].dt.strftime("%Y-%m-%dT00:00:00Z")
    quantity = log["quantity"].astype(int)
    orders = pd.DataFrame({"order_id": order_id, "customer_id": log["customer_id"], "ordered_at": at,
                           "status": "delivered", "currency": CURRENCY, "total": log["amount"].map("{:.2f}".format),
                           "channel": "web"})
    items = pd.DataFrame({"order_id": order_id, "line_number": 1, "sku": SKU, "quantity": quantity,
                          "unit_price": (log["amount"] / quantity.where(quantity > 0)).round(2).fillna(0.0)
                          .map("{:.2f}".format)})
    first = log.groupby("customer_id", as_index=False)["day"].min()
    customers = pd.DataFrame({"customer_id": first["customer_id"],
                              "created_at": first["day"].dt.strftime("%Y-%m-%dT00:00:00Z")})
    products = pd.DataFrame({"sku": [SKU], "name": ["Compact disc"], "category": ["Music > CDs"],
                             "currency": [CURRENCY], "active": ["true"]})
    written = {}
    for entity, frame in {"customers": customers, "products": products, "orders": orders,
                          "order_items": items}.items():
        path = Path(landing) / brand / entity / f"{brand}_{entity}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        written[entity] = len(frame)
    return written
