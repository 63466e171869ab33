"""One module per ``smapgan`` sub-command (see ``smapgan.cli``)."""
