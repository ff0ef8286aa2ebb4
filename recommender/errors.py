"""The recommender's errors, in their own module so that search and serving share them."""

from __future__ import annotations

from recommender.types import TitleMatch


class NoModelError(RuntimeError):
    """No checkpoint is loaded yet (train one, or wait for the first promotion)."""

    def __init__(self, message: str = "no model is loaded yet: train one with `anirec train`"):
        super().__init__(message)


class UnknownTitleError(LookupError):
    """A typed title that matches no anime well enough; ``suggestions`` are the closest ones."""

    def __init__(self, text: str, suggestions: tuple[TitleMatch, ...] = ()) -> None:
        hint = ""
        if suggestions:
            hint = "; did you mean " + ", ".join(repr(m.anime.title) for m in suggestions[:3]) + "?"
        super().__init__(f"no anime called {text!r}{hint}")
        self.text = text
        self.suggestions = tuple(suggestions)
