"""Price bands: where an item's price sits among its category's prices, cheapest band first.

An analysis idea that the derived tables (``cs_events.price_band``), the Preferences, Segments and
Campaigns analyses and the sequence model's price-band token all share; it lives below all of them
so that none has to import the model's config for it.
"""
from __future__ import annotations

#: Price bands of an item within its category, cheapest first (quartiles of the category's prices).
PRICE_BANDS = ("budget", "mid", "premium", "luxury")
#: Quantiles of a category's prices that separate the bands above.
PRICE_BAND_QUANTILES = (0.25, 0.5, 0.75)
