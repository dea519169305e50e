"""cartsight core: ingestion, storage, queries and models, with no Streamlit dependency."""
