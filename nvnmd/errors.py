"""User-facing errors: anything raised as NvnmdError is printed by the CLI as one line, exit 2.

Bugs stay ordinary exceptions (with tracebacks); bad input, bad files and link faults are
NvnmdError subclasses so the CLI and library callers can tell them apart.
"""


class NvnmdError(Exception):
    """A problem with the user's input, files, model or hardware link (not a bug)."""


class UnsupportedModelError(NvnmdError):
    """The model file is readable but not something we can run (descriptor type, options)."""


class CorruptFileError(NvnmdError):
    """A file is truncated, has a bad checksum, or is not in the expected format."""


class StructureError(NvnmdError):
    """Unknown elements, overlapping atoms, boxes too small for the cutoff."""


class NeighborOverflowError(NvnmdError):
    """More neighbours within the cutoff than the model's sel or the board allows."""


class FixedPointOverflowError(NvnmdError):
    """A quantity does not fit its fixed-point format (saturation where it is not allowed)."""


class LinkError(NvnmdError):
    """Transport or protocol failure talking to a board that retries could not recover."""
