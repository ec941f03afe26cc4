"""Sphinx configuration of the course page: the lesson as the course publishes its notebooks,
built offline (no theme, font or script fetched from a network; MathJax served from the site)."""

project = "pystatsml-tl: pretraining and transfer learning"
author = "pystatsml-tl"
extensions = ["myst_nb"]
nb_execution_mode = "off"  # the notebooks are shown with the outputs they were committed with
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
html_theme = "alabaster"  # Sphinx's own theme: nothing to fetch
html_theme_options = {"font_family": "system-ui, sans-serif", "head_font_family": "system-ui, sans-serif",
                      "code_font_family": "monospace", "show_powered_by": False, "page_width": "1100px"}
html_static_path = ["_generated/static"]
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"  # in _static: the copy docs/build.py makes
html_copy_source = False
html_show_sourcelink = False
exclude_patterns = ["_build", "build.py", "README.md", "_generated/static", "_generated/downloads", "sample-report/**"]
suppress_warnings = ["mystnb.unknown_mime_type"]
# the MathJax that jupyter_server_mathjax ships (version 2) carries the STIX-Web fonts only; myst-nb marks
# a notebook's page to be ignored but its math spans to be processed, which version 2 reads as processClass
mathjax2_config = {"HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web",
                                "imageFont": None},
                   "tex2jax": {"processClass": "tex2jax_process|mathjax_process|math|output_area"}}
