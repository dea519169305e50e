"""Reading what an analyst drops in: recognise the file (sniff), map it onto the canonical schema, and load
it all-or-nothing, every row stored or quarantined with its reason (``core.ingest.load.ingest_file``)."""
