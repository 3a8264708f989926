"""clipig-gallery renderer: CLIPig configs rendered in batches on the GPU.

Importing this package does no work: torch is imported by the modules that
need it, so the prompt list and the config syntax stay usable without it.
"""

__version__ = "0.1.0"
