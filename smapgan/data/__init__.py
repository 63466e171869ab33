"""Datasets prepared for training the bundled models (see ``smapgan data --help``)."""
