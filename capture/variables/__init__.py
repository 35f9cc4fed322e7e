"""Variable trackers: one module per kind of value the interpreter tracks."""
