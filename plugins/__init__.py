"""The built-in task plugins of ftrun, and the helpers they share."""
