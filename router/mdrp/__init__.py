"""The Grubhub Meal Delivery Routing Problem (MDRP) as a second rule set of the engine.

``instance`` reads an instance folder, ``adapter`` turns it into the engine's scenario, travel
metric and policy, ``solution`` writes the evaluator's files and the MDRP metrics, ``run`` plays
one instance's day on the virtual clock.
"""
