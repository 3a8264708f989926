"""The runs a user asks for, each a planner over the execution seam: first
attempts (the gallery), the ranking experiment, best of N, histories added
afterwards, the judge, and the benchmark."""
