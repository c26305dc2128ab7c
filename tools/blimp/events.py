"""events: the guest's event lines, `@ev {json}` on the serial console.

docs/events.md lists every event and field. parse_event() turns a line into
a dict or refuses it, naming the line, so no tool guesses at a malformed one.
"""
import json

EVENT_PREFIX = "@ev "


class EventFormatError(ValueError):
    """A line behind the event prefix is not one JSON object with "ev" and
    "t_ms", or lacks a field the host tools read (EVENT_FIELDS)."""


# The fields the host tools (vm.py, scenario.py, fuzz_device.py, bench/)
# read from each event, and their types. A line without one of them, or with
# another type, is refused here like malformed JSON, so a tool never meets a
# KeyError or TypeError deep inside a wait. docs/events.md lists every field.
EVENT_FIELDS = {
    "ready": {"boot": str, "mem_usable": int},
    "clock": {"ruler": str, "tsc_hz": int, "checked_by": str, "rulers": list},
    "cmd": {"name": str, "rc": int},
    "cmd_error": {"name": str},
    "pfa": {"check": str, "free": int},
    "poweroff": {"why": str},
    "power_button": {"via": str},
    "fuzz_finding": {"kind": str, "detail": str},
    "fuzz_done": {"ops": int, "programs": int, "needs_reset_bad": int, "needs_reset_valid": int},
}


def _is(value, kind):
    # JSON true is not a number here, though Python's bool is an int.
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def parse_event(line):
    """Return the event dict of an `@ev ` line, None for other lines.

    A line that has the prefix but is not a well-formed event raises
    EventFormatError naming the line, rather than being guessed at.
    """
    if not line.startswith(EVENT_PREFIX):
        return None
    text = line[len(EVENT_PREFIX):]
    try:
        ev = json.loads(text)
    except json.JSONDecodeError as e:
        raise EventFormatError(f"malformed event line ({e.msg} at column {e.pos}): {line!r}")
    if not isinstance(ev, dict) or not _is(ev.get("ev"), str) or not _is(ev.get("t_ms"), int):
        raise EventFormatError(f"event line without string 'ev' and integer 't_ms': {line!r}")
    for field, kind in EVENT_FIELDS.get(ev["ev"], {}).items():
        if not _is(ev.get(field), kind):
            raise EventFormatError(f"{ev['ev']!r} event without {kind.__name__} field {field!r}: {line!r}")
    return ev
