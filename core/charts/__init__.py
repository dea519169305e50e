"""Plotly figures, one module per page's subject, built from the small frames the analysis, model and
campaign modules return: titled, labelled, with units."""
