"""The ``migctl`` command line: thin verbs that parse, call the library and render.

One module per verb group; ``main.run`` is the console entry point and the only place
that turns exceptions into exit codes (no traceback ever reaches a user).
"""
