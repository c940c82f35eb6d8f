"""The book's human-interaction controls ("Learning Chaos Engineering", ch. 11)."""
