"""The engine and its model: the batched optimiser (``optimise``), per-image
random streams, image I/O, optimisation histories, CLIP loading and weights,
devices and the precision they compute natively, and rating images."""
