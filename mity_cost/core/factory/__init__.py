"""The factory's files: what they hold, where they are, reading and writing them, and the
factory's own naming and price rules (mITyFactory, the program whose costs mity-cost shows)."""
