"""CLIPig's config language: YAML configs parsed into frozen specs, the
whitelisted expression evaluator, the registries of transforms, constraints
and optimisers, and the table of what is refused and why. Needs torch only
for the ops themselves."""
