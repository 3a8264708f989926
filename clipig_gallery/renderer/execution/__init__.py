"""Execution: render jobs and their results, the executors that run them
(this process or Ray workers), batch sizing, timing, and the cache's rule of
what a complete image is."""
