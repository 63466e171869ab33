"""Image intake: every user image is checked against the limits from its headers, then decoded."""
