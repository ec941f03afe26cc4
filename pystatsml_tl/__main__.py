"""``python -m pystatsml_tl`` works like the ``pystatsml-tl`` command."""
import sys

from .cli import main

sys.exit(main())
