"""The words cartsight uses for its forecasts, in one place: page labels, their explanations and the CSV headers.

Two numbers speak of a purchase and must never be read one for the other:

- the **chance to buy within N days** (stored as ``purchase_propensity``; CSV ``p_buy_within_Nd``):
  the calibrated probability that the shopper buys at least once within the horizon. It ranks
  shoppers and sizes lists: of 100 shoppers shown 20 %, about 20 buy.
- the **likely next step** (stored as ``next_event_type`` and ``p_view`` … ``p_none``; CSV
  ``next_step`` and ``next_step_p_view`` …): the furthest funnel step the shopper is expected to
  reach within the horizon, from a second forecast that shares 100 % among five steps
  (nothing, view, remove from cart, cart, purchase). Its purchase share comes from that forecast
  and is not calibrated, so it differs from the chance to buy.

The store keeps its column names; pages rename with :func:`column_labels` and exports with
:func:`export_frame`; :func:`stored_frame` reads either header back.
"""
from __future__ import annotations

import re

import pandas as pd

NEXT_STEP = "Likely next step"
NEXT_CATEGORY = "Likely next category"
NEXT_CATEGORY_P = "Chance of that category"
#: Words for the stored next-step classes.
STEP_WORDS = {"view": "view", "cart": "cart", "purchase": "purchase", "remove_from_cart": "remove from cart",
              "none": "nothing"}
#: Stored share column of each next step.
STEP_COLUMNS = {"p_view": "view", "p_cart": "cart", "p_purchase": "purchase", "p_remove": "remove_from_cart",
                "p_none": "none"}
NEXT_CATEGORY_P_HELP = (
    "How likely the likely next category is: the sequence model's probability for it, or, when a simple "
    "baseline names the category (the model did not beat it), that baseline's hit rate: the share of "
    "shoppers in the held-out window whose next category was the baseline's first choice."
)
#: The layouts ingest recognises, in the words the Data page and the CLI's text output show (JSON keeps the codes).
LAYOUT_NAMES = {
    "rees46": "REES46 multi-category store",
    "taobao": "Taobao UserBehavior (no header)",
    "online_retail": "UCI Online Retail transactions",
    "yoochoose": "YooChoose clicks",
    "transactions": "Transactions (customer, date, amount)",
    "generic": "Event file with named columns",
    "manual": "Mapped by hand",
    "connected": "A team's table, read in place",
}
_BUY_HEADER = re.compile(r"^p_buy_within_(\d+)d$")


def layout_name(layout: str | None) -> str:
    """A layout code in words (``generic`` -> "Event file with named columns"); an unknown code as it is."""
    return LAYOUT_NAMES.get(layout, str(layout))


def _days(horizon_days: int) -> str:
    return f"{int(horizon_days)} day" + ("" if int(horizon_days) == 1 else "s")


def chance_to_buy(horizon_days: int) -> str:
    """The label of the propensity: "Chance to buy within 7 days"."""
    return f"Chance to buy within {_days(horizon_days)}"


def chance_to_buy_help(horizon_days: int) -> str:
    """What the chance to buy is, and how it differs from the next step's purchase share."""
    return (f"The calibrated chance that this shopper buys at least once within the next {_days(horizon_days)}: "
            "of 100 shoppers shown 20 %, about 20 buy. Rank and size lists by it. Not the same number as "
            f"'{step_share('purchase')}', which is the next-step forecast's share for a purchase.")


def next_step_help(horizon_days: int) -> str:
    """What the likely next step and its shares are."""
    return (f"The furthest funnel step this shopper is expected to reach within the next {_days(horizon_days)} "
            "(nothing < view < remove from cart < cart < purchase). The shares split 100 % among the five steps; "
            f"their purchase share is not calibrated: for the chance of a purchase read "
            f"'{chance_to_buy(horizon_days)}'.")


def expected_revenue(horizon_days: int) -> str:
    """The label of the value forecast: "Expected revenue within 7 days"."""
    return f"Expected revenue within {_days(horizon_days)}"


def expected_revenue_help(horizon_days: int) -> str:
    return (f"The revenue this shopper is expected to bring within the next {_days(horizon_days)}, in the file's "
            "currency (most shoppers bring nothing in a short window, so most values are small): rank lists by it to "
            "reach the spend, not only the buyers. Empty when the data has no prices.")


def lapse_risk(horizon_days: int) -> str:
    """The label of the churn forecast: "Chance of no activity within 7 days"."""
    return f"Chance of no activity within {_days(horizon_days)}"


def lapse_risk_help(horizon_days: int) -> str:
    return (f"The calibrated chance that this shopper does nothing at all (no visit, no event) within the next "
            f"{_days(horizon_days)}: of 100 shoppers shown 60 %, about 60 stay away. Not the same number as "
            f"'{step_share('none')}', the next-step forecast's uncalibrated share for doing nothing.")


def step_share(step: str) -> str:
    """The label of one next-step share: "Next step: purchase"."""
    return f"Next step: {STEP_WORDS.get(step, step)}"


def buy_header(horizon_days: int) -> str:
    """The CSV header of the propensity: ``p_buy_within_7d``."""
    return f"p_buy_within_{int(horizon_days)}d"


def export_names(horizon_days: int) -> dict[str, str]:
    """Stored column -> CSV header, for the columns whose stored names say less than their labels."""
    return {"purchase_propensity": buy_header(horizon_days), "next_event_type": "next_step",
            **{col: f"next_step_{col}" for col in STEP_COLUMNS}}


def column_labels(horizon_days: int) -> dict[str, str]:
    """Stored column -> the words a page shows above it."""
    return {"user_id": "Shopper", "purchase_propensity": chance_to_buy(horizon_days), "next_event_type": NEXT_STEP,
            **{col: step_share(step) for col, step in STEP_COLUMNS.items()},
            "next_category": NEXT_CATEGORY, "next_category_p": NEXT_CATEGORY_P, "top_items": "Likely items",
            "reasons": "Why", "expected_revenue": expected_revenue(horizon_days), "p_inactive": lapse_risk(horizon_days),
            "model_version": "Model version"}


def export_frame(frame: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """``frame`` (stored column names) with the CSV headers of :func:`export_names`; other columns as they are."""
    return frame.rename(columns=export_names(horizon_days))


def stored_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A forecasts table with either header (today's CSV or the stored names) in the stored names."""
    back = {"next_step": "next_event_type", **{f"next_step_{col}": col for col in STEP_COLUMNS}}
    back.update({c: "purchase_propensity" for c in frame.columns if _BUY_HEADER.match(str(c))})
    return frame.rename(columns=back)
