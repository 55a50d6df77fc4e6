"""Every note of a lesson that says what happens carries a claim `stepviz lessons check` tests. Only a note made
of instructions alone (each sentence starting "Press") may carry none; the class question is not a statement.
A sentence that counts over seeds ("over seeds 0-15 ...") carries a count over those seeds, and one that states a
value of the model's config (a channel count, the scaling_factor) a config claim, in the note's [[events.expect]]
or, for the description, in the lesson's [[expect]] tables."""

import re
import tomllib

import pytest

from stepviz.lessons.shipped import LESSONS_FOLDER

READY = sorted(path.stem for path in LESSONS_FOLDER.glob("*.toml"))
INSTRUCTION = re.compile(r"Press\b")
QUESTION = "Question for the class"
OVER_SEEDS = re.compile(r"\bseeds (\d+)-(\d+)|\bover (\d+) seeds\b", re.IGNORECASE)
CONFIG_FACT = re.compile(r"\bscaling_factor is \d|\b\d+ (?:input )?channels\b|\b\d+ \+ \d+(?: \+ \d+)? channels\b"
                         r"|\bat most \d+ tokens\b|\bsteps_offset \d|\bx \d+ x 4 latents\b|\bshift \d+ \(its own")


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


def seed_range(table: dict) -> tuple[int, int] | None:
    """(first, last) of a count claim's seeds = "A-B" or list."""
    seeds = table.get("seeds")
    if isinstance(seeds, str) and "-" in seeds:
        first, last = seeds.split("-")
        return int(first), int(last)
    return (min(seeds), max(seeds)) if isinstance(seeds, list) and seeds else None


def unclaimed_counts_and_config(lesson_text: str) -> list[str]:
    """Sentences of the description or a note that count over seeds with no count over those seeds beside them, or
    state a config value with no config claim beside them, as "where: the sentence's start"."""
    data = tomllib.loads(lesson_text)
    places = [("description", data.get("description", ""), data.get("expect", []))]
    places += [(f"step {e['at_step']}", e.get("note", ""), e.get("expect", [])) for e in data.get("events", [])]
    missing = []
    for where, text, claims in places:
        ranges = {seed_range(claim) for claim in claims if "seeds" in claim}
        for sentence in sentences(" ".join(text.split())):
            for found in OVER_SEEDS.finditer(sentence):
                first, last, many = found.groups()
                wanted = (int(first), int(last)) if first else None
                if not ranges or (wanted and wanted not in ranges) or (many and all(
                        r is None or r[1] - r[0] + 1 != int(many) for r in ranges)):
                    missing.append(f"{where}: {sentence[:70]}")
            if CONFIG_FACT.search(sentence) and not any("config" in claim for claim in claims):
                missing.append(f"{where}: {sentence[:70]}")
    return missing


@pytest.mark.parametrize("name", READY)
def test_every_note_that_states_something_carries_a_claim(name):
    assert unclaimed_notes(LESSONS_FOLDER.joinpath(f"{name}.toml").read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("name", READY)
def test_counts_over_seeds_and_config_facts_carry_their_claims(name):
    assert unclaimed_counts_and_config(LESSONS_FOLDER.joinpath(f"{name}.toml").read_text(encoding="utf-8")) == []


def test_a_planted_unclaimed_note_is_found():
    text = LESSONS_FOLDER.joinpath("guidance.toml").read_text(encoding="utf-8")
    planted = text + '\n[[events]]\nat_step = 20\nnote = "By step 20 x0-hat is blue. Press p to pause."\n'
    instructions = text + '\n[[events]]\nat_step = 20\nnote = "Press p to pause. Press space to step."\n'
    assert unclaimed_notes(text) == []
    assert unclaimed_notes(planted) == ["step 20: By step 20 x0-hat is blue. Press p to pause."]
    assert unclaimed_notes(instructions) == []


def test_a_planted_count_or_config_fact_without_its_claim_is_found():
    head = 'title = "t"\ndescription = "Over seeds 0-7 it ends red 6 times. The UNet takes 9 input channels."\n'
    colour_claim = '[[expect]]\nseeds = "0-7"\ncolour = "red"\ncount = 6\n'
    config_claim = '[[expect]]\nconfig = "unet.in_channels"\nequals = 9\n'
    other_seeds = colour_claim.replace("0-7", "0-3")
    assert unclaimed_counts_and_config(head + colour_claim + config_claim) == []
    assert unclaimed_counts_and_config(head + colour_claim) == ["description: The UNet takes 9 input channels."]
    assert unclaimed_counts_and_config(head + other_seeds + config_claim) == [
        "description: Over seeds 0-7 it ends red 6 times."]
    note = ('[[events]]\nat_step = 3\nnote = "Over 16 seeds s = 15 misses 7 times."\n[[events.expect]]\n'
            'colour = "red"\n')
    assert unclaimed_counts_and_config('title = "t"\n' + note) == ["step 3: Over 16 seeds s = 15 misses 7 times."]
    counted = note + '[[events.expect]]\nseeds = "0-15"\nshape = "triangle"\ncount = 9\n'
    assert unclaimed_counts_and_config('title = "t"\n' + counted) == []


def test_sentences_split_at_sentence_ends_only():
    assert sentences("s = 7.5. Watch x0-hat: 0.85 at step 10. Question for the class: why?") == [
        "s = 7.5.", "Watch x0-hat: 0.85 at step 10."]
