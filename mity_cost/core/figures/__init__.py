"""What a session adds up to: its figures computed once, the one rule for its total, the factory's summary."""
