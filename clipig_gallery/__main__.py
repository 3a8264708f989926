"""``python -m clipig_gallery``: the clipig-gallery command line, for a Python whose
scripts folder is not on the PATH (a notebook's kernel, a virtual environment not
activated)."""

from clipig_gallery.app.cli import main

main(prog_name="clipig-gallery")
