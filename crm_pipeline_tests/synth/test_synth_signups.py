"""What ties a subscription to the rest of a person's records: where it was signed up."""

from __future__ import annotations

import pandas as pd

from crm_pipeline_tests.synth.test_synth_realism import _with_person

FORM_PAGES = {"/newsletter/subscribed": "popup", "/preferences/saved": "preference_center",
              "/account/newsletter": "account"}


def test_an_account_opt_in_carries_the_accounts_address(landed, truth):
    subs = _with_person(landed, truth, "subscribers")
    customers = _with_person(landed, truth, "customers").drop_duplicates(["brand", "customer_id"])
    people = truth["people"].set_index("person_id")
    customers["own"] = [e.strip().lower() in (people.at[p, "email"], people.at[p, "second_email"]) and e != ""
                        for e, p in zip(customers["email"], customers["person_id"])]
    opt_in = subs[subs["source"] == "account"].merge(customers[customers["own"]], on=["brand", "person_id"],
                                                     suffixes=("", "_account"))
    assert len(opt_in) > 100
    assert (opt_in["email"] == opt_in["email_account"]).mean() > 0.97  # a planted bad row may differ
    # Other sign-ups keep their own draw: a person's other address appears among them.
    others = subs[subs["source"] == "popup"].merge(customers[customers["own"]], on=["brand", "person_id"],
                                                   suffixes=("", "_account"))
    assert 0.05 < (others["email"].str.strip().str.lower() != others["email_account"].str.strip().str.lower()).mean()


def test_a_share_of_site_sign_ups_is_seen_by_the_tracker_on_the_persons_cookie(landed, truth):
    web = _with_person(landed, truth, "web_events")
    path = web["url"].str.replace(r"^https://[^/]+", "", regex=True)
    forms = web[path.isin(list(FORM_PAGES))].assign(source=path.map(FORM_PAGES))
    subs = _with_person(landed, truth, "subscribers")
    seen = forms.merge(subs, on=["brand", "email"], suffixes=("", "_sub"))
    # every confirmation page carries a subscriber's address (but for a planted bad row) ...
    assert len(seen) > 0.98 * len(forms) > 100
    assert (seen["person_id"] == seen["person_id_sub"]).all()  # ... typed by that subscriber
    assert (seen["source"] == seen["source_sub"]).all()
    on_site = subs[subs["source"].isin(FORM_PAGES.values())]
    assert 0.5 < len(forms) / len(on_site) < 0.75  # the rest declined the tracker (or had stopped visiting)
    # The account page's opt-in is ticked logged in: the person's own account; the other forms anonymous.
    account = seen[seen["source"] == "account"]
    assert len(account) > 30 and (account["customer_id"] != "").all()
    customers = _with_person(landed, truth, "customers").drop_duplicates(["brand", "customer_id"])
    owner = account.merge(customers, on=["brand", "customer_id"], suffixes=("", "_account"))
    assert len(owner) > 0.98 * len(account) and (owner["person_id"] == owner["person_id_account"]).all()
    assert (seen.loc[seen["source"] != "account", "customer_id"] == "").all()
    # The session's cookie is the person's: it shows up in their other sessions too.
    cookies = web[~path.isin(list(FORM_PAGES)) & (web["cookie_id"] != "")].groupby("cookie_id")["person_id"].agg(set)
    known = forms[forms["cookie_id"].isin(cookies.index)]  # (a planted bad row has none)
    assert len(known) > 0.5 * len(forms)
    assert all(p in cookies[c] for c, p in zip(known["cookie_id"], known["person_id"]))
