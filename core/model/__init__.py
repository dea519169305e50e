"""The sequence model: config, modeling, training, evaluation, registry."""
