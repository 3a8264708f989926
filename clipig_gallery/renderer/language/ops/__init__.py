"""What a config can name: transforms, constraints and optimisers.

Each kind is one ``Registry`` (``registry.py``) of ``Op`` definitions: the
function, its parameters, a one-line doc from its docstring and the rules a
config must follow to use it. ``renderer.language.config`` checks a config against
these registries; ``renderer.engine.optimise`` runs the functions.
"""
