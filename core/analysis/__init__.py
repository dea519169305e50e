"""What the pages show about shoppers, computed in the database: the overview, preferences and affinity,
RFM groups, segments (features, k-means, names and profiles) and one shopper's view. Reads the store and
the model's published forecasts; knows nothing of campaigns, charts or pages."""
