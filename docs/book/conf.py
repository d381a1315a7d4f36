"""Sphinx configuration of the book (`make book`): the executed notebooks as stored, never re-run, and the topic pages.

tools/build_book.py copies notebooks/ (the learners' README as the landing page, the nine notebooks, the
solutions) and the topic pages docs/*.md (under docs/, with the figures they show at the same relative paths) into
build/book/src and runs `sphinx-build -c docs/book` on it; the site is build/book/html. MyST-NB renders the stored
outputs (nb_execution_mode = "off"), so the book shows the figures and numbers of the committed run and needs no
data, no kernel and no network. The topic pages link each other's headings (`page.md#anchor`), which
myst_heading_anchors resolves.
"""
project = "safs_lite: the notebooks and the docs"
author = "safs_lite"
extensions = ["myst_nb", "sphinx_design"]   # sphinx-design: the folded solutions (dropdowns)
nb_execution_mode = "off"                 # render the stored outputs; never execute
nb_output_stderr = "remove"               # progress bars and warnings are not part of the reading
myst_enable_extensions = ["dollarmath"]   # $$ f(x) = ... $$ in notebook 03
myst_heading_anchors = 3
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["myst.header", "myst.xref_missing", "mystnb.unknown_mime_type"]
html_theme = "sphinx_book_theme"
html_title = "safs_lite notebooks"
html_theme_options = {"show_toc_level": 2}
html_static_path = []
