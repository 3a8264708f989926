"""clipig-gallery generator: cache + article -> static site (never imports torch).

The site builder arrives with its own issue; the package exists so the
project layout and install are in place from the start.
"""
