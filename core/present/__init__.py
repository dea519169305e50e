"""What the analyst reads and takes away: the shared vocabulary (one name and one explanation for each
forecast, the same on every page, in the CLI and in CSV headers) and the one writer of every table file
cartsight hands out (formula cells escaped, written whole or not at all)."""
