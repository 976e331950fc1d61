"""The ``ftrun`` commands, one module each, independent of each other."""
