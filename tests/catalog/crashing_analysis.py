"""A stand-in for a native decoder that kills its process on one file, importable by spawned
analysis workers (no Django)."""

import os

from catalog.audio.analysis import analyse_file_or_error


def analyse_or_die(args):
    path, _seconds = args
    if path.name.startswith("crash"):
        os._exit(139)
    return analyse_file_or_error(args)
