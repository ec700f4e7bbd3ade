"""Quarterhour service (HTTP API); see DESIGN.md, section Service."""
