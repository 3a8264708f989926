"""The torch-free ground of clipig-gallery: prompts, settings, paths, the cache
layout and schema, ratings CSVs and atomic writes. Imports neither the renderer,
the generator nor torch."""
