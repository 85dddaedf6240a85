"""``python -m tippen_rt.persist._writer_main DB_PATH``: the writer process.

A module of its own, imported by nothing, so that running it does not load
``_writer_process`` twice (once by the package, once as ``__main__``).
"""

import sys

from ._writer_process import main

sys.exit(main(sys.argv[1:]))
