"""Why the compiled preprocessing is not used (internal; what a client sees is in api.errors)."""

from __future__ import annotations


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



class UncompiledInput(TypeError):
    """A column reached a compiled step with a dtype the compiler does not mirror (the library may accept it)."""
