"""From forecasts and segments to a list: filters, the target list and its holdout, contact identities and
suppression, the export files and their log, and the outcome a list can expect."""
