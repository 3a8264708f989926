"""clipig-gallery renderer: CLIPig configs rendered in batches on the GPU.

``language`` (configs and ops) <- ``engine`` (the optimiser and its model) <-
``execution`` (jobs, executors, batching, the cache's completeness rule) <-
``runs`` (what a user asks for) <- ``cli``: each imports only those to its
left (``tests/test_layering.py``). Importing the package imports nothing
else; parsing a config needs torch, as its ops do.
"""

__version__ = "0.1.0"
