"""The foundation: errors, the terminal, the Hub, memory and precision; it imports nothing else of ftrun."""
