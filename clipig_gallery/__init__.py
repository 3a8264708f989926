"""clipig-gallery: CLIP-guided images of the animal gallery, rendered and published.

Four subpackages, with dependencies running one way (tests/test_layering.py):

- ``core``: the prompts, the cache's layout and file contract, settings and
  atomic writes; no torch;
- ``renderer``: the CLIPig language, the engine and model, execution (local or
  Ray) and the runs a user asks for; needs torch;
- ``generator``: the post and site built from a cache, and publishing; no torch;
- ``app``: the command line, the demo and the notebook's helpers, on top.

Importing this package imports none of them.
"""
