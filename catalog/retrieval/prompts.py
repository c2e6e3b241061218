"""Structured category prompts (seed 004 section 4.2.2) turned into text queries. Plain module.

Users who cannot name a reference song pick categories instead; the picks become one text
prompt for the audio-text encoder, phrased like the captions it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

# The catalogue's own mood tags (catalog.audio.descriptors) plus the seed paper's listener moods.
MOODS = (
    "happy", "sad", "energetic", "calm", "peaceful", "melancholic", "tense", "dramatic",
    "uplifting", "mysterious", "dark", "bright", "nostalgic", "angry", "relaxed",
)  # fmt: skip
INSTRUMENTS = ("piano", "strings", "guitar", "synth", "drums", "bass", "brass", "choir", "flute")
SITUATIONS = ("baby shower", "wedding", "funeral", "birthday", "graduation", "party", "dinner")
FUNCTIONS = ("workout", "relax", "focus", "study", "sleep", "yoga", "running", "meditation")

# What a situation or function asks of the music, in words the encoder was trained on.
_SITUATION_WORDS = {
    "baby shower": "gentle happy",
    "wedding": "bright happy major key",
    "funeral": "slow sad minor key",
    "birthday": "happy energetic",
    "graduation": "bright triumphant",
    "party": "fast energetic with drums",
    "dinner": "calm relaxed",
}
_FUNCTION_WORDS = {
    "workout": "fast energetic with drums",
    "relax": "slow calm",
    "focus": "calm steady",
    "study": "calm quiet",
    "sleep": "slow quiet calm",
    "yoga": "slow calm ambient",
    "running": "fast energetic",
    "meditation": "slow calm ambient",
}


class CategoryError(ValueError):
    """A category value outside the vocabulary."""


@dataclass(frozen=True)
class CategoryPrompt:
    genre: str = ""
    subgenre: str = ""
    moods: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    situation: str = ""
    function: str = ""

    def validate(self) -> None:
        for value, allowed, label in (
            *((m, MOODS, "mood") for m in self.moods),
            *((i, INSTRUMENTS, "instrument") for i in self.instruments),
            (self.situation, SITUATIONS, "situation"),
            (self.function, FUNCTIONS, "function"),
        ):
            if value and value not in allowed:
                raise CategoryError(f"unknown {label} '{value}'; choose from: {', '.join(allowed)}")
        if not any(
            (self.genre, self.subgenre, self.moods, self.instruments, self.situation, self.function)
        ):
            raise CategoryError("pick at least one category")

    def as_text(self) -> str:
        self.validate()
        words = [*self.moods]
        style = " ".join(
            w
            for w in (
                self.subgenre,
                self.genre and f"({self.genre})" if self.subgenre else self.genre,
            )
            if w
        )
        words.append(f"{style} music".strip() if style else "music")
        text = " ".join(w.lower() for w in words if w)
        extras = []
        if self.instruments:
            extras.append("with " + " and ".join(self.instruments))
        if self.situation:
            extras.append(f"{_SITUATION_WORDS[self.situation]}, for a {self.situation}")
        if self.function:
            extras.append(f"{_FUNCTION_WORDS[self.function]}, for {self.function}")
        return ", ".join([text, *extras])
