"""Named kinds of bad rows: the hard rules a row can break.

The generator plants them (truth/bad_rows.csv `reason`) and the quality stage
quarantines rows under the same names, so the two can be compared one to one.
"""

MISSING_REQUIRED_FIELD = "missing_required_field"
UNPARSEABLE_DATE = "unparseable_date"
NEGATIVE_PRICE = "negative_price"
MALFORMED_EMAIL = "malformed_email"
DUPLICATED_ORDER_ID = "duplicated_order_id"
FUTURE_TIMESTAMP = "future_timestamp"
ORPHAN_ORDER_ITEM = "orphan_order_item"

BAD_ROW_KINDS: dict[str, str] = {
    MISSING_REQUIRED_FIELD: "a required field (or both of a one-of pair) is empty",
    UNPARSEABLE_DATE: "a date or timestamp that no accepted format reads",
    NEGATIVE_PRICE: "a price, unit price or total below zero",
    MALFORMED_EMAIL: "an email that is not syntactically an address",
    DUPLICATED_ORDER_ID: "a second, different order under an order id the file already used",
    FUTURE_TIMESTAMP: "a timestamp after the day its file was written (the file's modification day, UTC)",
    ORPHAN_ORDER_ITEM: "an order line whose order_id no orders file of the brand has",
}

# Rules the quality stage also applies, which the generator does not plant.
DUPLICATED_ANY_KEY = "duplicated_key"
INVALID_NUMBER = "invalid_number"
INVALID_VALUE = "invalid_value"
ORDER_QUARANTINED = "order_quarantined"

MORE_RULES: dict[str, str] = {
    DUPLICATED_ANY_KEY: "a second, different row under a key the file already used (entities other than orders)",
    INVALID_NUMBER: "a number, amount or whole count that does not parse",
    INVALID_VALUE: "a required column holding a value outside its allowed set",
    ORDER_QUARANTINED: "an order line whose order is quarantined (or its file held); released when a corrected "
                       "order lands",
}
