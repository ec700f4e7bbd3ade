"""Dispatch policies: each module holds one class implementing ``router.snapshot.Policy``."""
