"""Tables the local engines keep in the shared store (memory, profile, knowledge).

They live in storage so that migrations create them without importing an engine;
the engines import them from here (engines -> storage).
"""
