"""Errors of the compiled preprocessing path."""

from __future__ import annotations

from api.errors import InvalidInputError


class UnsupportedPreprocessor(Exception):
    """The fitted preprocessor uses a step or option the compiler does not translate."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CompiledMismatch(Exception):
    """The compiled transform differs from the library's on some verification input."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownCategoryError(InvalidInputError):
    """A category never seen in fit reached an encoder fitted with ``handle_unknown="error"``."""

    def __init__(self, column: str, value: object) -> None:
        super().__init__(
            f"unknown category {value!r} for column {column!r}",
            details=[{"loc": [column], "msg": "unknown category", "type": "unknown_category"}],
        )
        self.column = column
        self.value = value


class UncompiledInput(TypeError):
    """A column reached a compiled step with a dtype the compiler does not mirror (the library may accept it)."""
