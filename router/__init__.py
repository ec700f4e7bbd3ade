"""Quarterhour engine: pure, arrays in, plans out (no database, no HTTP)."""
