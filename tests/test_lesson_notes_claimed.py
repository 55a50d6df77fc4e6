"""Every note of a lesson that says what happens carries a claim `stepviz lessons check` tests. Only a note made
of instructions alone (each sentence starting "Press") may carry none; the class question is not a statement."""

import re
import tomllib

import pytest

from stepviz.lessons.shipped import LESSONS_FOLDER

READY = sorted(path.stem for path in LESSONS_FOLDER.glob("*.toml"))
INSTRUCTION = re.compile(r"Press\b")
QUESTION = "Question for the class"


def sentences(note: str) -> list[str]:
    """The note's sentences before the class question (a sentence ends at . ! or ? followed by a space)."""
    body = note.split(QUESTION)[0].strip()
    return [part for part in re.split(r"(?<=[.!?])\s+", body) if part]


def unclaimed_notes(lesson_text: str) -> list[str]:
    """The notes that state something and carry no [[events.expect]] table, as "step N: the note's start"."""
    events = tomllib.loads(lesson_text).get("events", [])
    return [f"step {event['at_step']}: {event['note'][:70]}" for event in events
            if event.get("note") and not event.get("expect")
            and not all(INSTRUCTION.match(sentence) for sentence in sentences(event["note"]))]


@pytest.mark.parametrize("name", READY)
def test_every_note_that_states_something_carries_a_claim(name):
    assert unclaimed_notes(LESSONS_FOLDER.joinpath(f"{name}.toml").read_text(encoding="utf-8")) == []


def test_a_planted_unclaimed_note_is_found():
    text = LESSONS_FOLDER.joinpath("guidance.toml").read_text(encoding="utf-8")
    planted = text + '\n[[events]]\nat_step = 20\nnote = "By step 20 x0-hat is blue. Press p to pause."\n'
    instructions = text + '\n[[events]]\nat_step = 20\nnote = "Press p to pause. Press space to step."\n'
    assert unclaimed_notes(text) == []
    assert unclaimed_notes(planted) == ["step 20: By step 20 x0-hat is blue. Press p to pause."]
    assert unclaimed_notes(instructions) == []


def test_sentences_split_at_sentence_ends_only():
    assert sentences("s = 7.5. Watch x0-hat: 0.85 at step 10. Question for the class: why?") == [
        "s = 7.5.", "Watch x0-hat: 0.85 at step 10."]
