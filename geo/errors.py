"""The one error root of cropcredit.

Every error the project raises on purpose derives from :class:`CropCreditError`; each
subclass also derives from the built-in type a caller would expect, so ``except ValueError``
still works::

    CropCreditError
    ├── ParcelError (ValueError)            a parcel's attributes or geometry are unusable
    │   └── ParcelGeometryError             invalid / empty / giant / wrong-CRS geometry
    ├── ImageryError (RuntimeError)         a scene or tile cannot be read or is malformed
    │   └── SourceUnavailableError          a remote imagery service failed after its retries
    ├── TableError (ValueError)             a reference table, loan file or config is malformed
    ├── ModelError (RuntimeError)           model weights missing or incompatible
    └── LedgerError (RuntimeError)          the decision ledger refused a write

Messages say the value, what was expected, and how to fix it.
"""

from __future__ import annotations


class CropCreditError(Exception):
    """Root of every error cropcredit raises on purpose."""


class ParcelError(CropCreditError, ValueError):
    """A parcel's attributes are unusable (missing farmer, unknown crop, duplicate id...)."""


class ParcelGeometryError(ParcelError):
    """A parcel's geometry is invalid, empty, implausibly large or in the wrong CRS."""


class ImageryError(CropCreditError, RuntimeError):
    """A scene or tile cannot be read, or has the wrong bands, CRS or dates."""


class SourceUnavailableError(ImageryError):
    """A remote imagery service failed after the last retry."""


class TableError(CropCreditError, ValueError):
    """A reference table, loan history file or config file is malformed."""


class ModelError(CropCreditError, RuntimeError):
    """Model weights are missing, corrupt or do not match the code."""


class LedgerError(CropCreditError, RuntimeError):
    """The decision ledger refused or could not complete a write."""
