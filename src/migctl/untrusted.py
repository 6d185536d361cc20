"""Text that comes from outside migctl, checked on the way in and made harmless on the way out.

Why this exists: job names, user and token names, process names and command lines from
``/proc``, hook output and machine names are written by people other than the one reading a
terminal. A terminal obeys escape sequences in what it prints: ESC ``[2J`` clears the screen,
``ESC ]0;`` sets the title, ``ESC ]52;`` writes the clipboard, a carriage return or a bidi
override hides what follows. So:

* names migctl stores for others to see (a lease's job name) must be printable on the way in
  (:func:`check_label`);
* anything from outside is escaped on the way out (:func:`escape`): every character that is not
  printable becomes a visible ``\\xNN`` / ``\\uNNNN`` escape, so nothing reaches the terminal
  as a control sequence. Callers print the result as a ``rich.text.Text`` (or with
  ``markup=False``) so that Rich markup in it (``[link=...]``) is not interpreted either.

Anyone may import this module; it imports only ``migctl.errors``.
"""

from __future__ import annotations

from migctl.errors import InvalidInputError

LABEL_MAX_CHARS = 128


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _shown(char: str, keep_newlines: bool) -> str:
    if char.isprintable() or (keep_newlines and char == "\n"):
        return char
    return _escaped(char)


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every non-printable character written as a visible escape (``\\x1b``).

    Printable means :meth:`str.isprintable`: no control, format, surrogate, private-use or
    unassigned characters, no separators but the space. ``keep_newlines`` leaves the line
    breaks of a multi-line text (an error hint) as they are.
    """
    if text.isprintable():
        return text
    return "".join(_shown(char, keep_newlines) for char in text)


def check_label(text: str, what: str, *, max_chars: int = LABEL_MAX_CHARS) -> str:
    """Refuse a name others will see unless it is 1 to ``max_chars`` printable characters."""
    if not 1 <= len(text) <= max_chars:
        raise InvalidInputError(
            f"{what} must be 1 to {max_chars} characters, got {len(text)}",
            hint=f"give a shorter {what}",
            context={"length": len(text)},
        )
    bad = sorted({char for char in text if not char.isprintable()})
    if bad:
        shown = ", ".join(_escaped(char) for char in bad)
        raise InvalidInputError(
            f"{what} '{escape(text)}' holds characters that are not printable ({shown})",
            hint=f"a {what} may hold printable characters only: letters, digits, punctuation "
            "and spaces; no control characters (escape sequences, tabs, newlines) or "
            "invisible formatting characters",
            context={"characters": [ord(char) for char in bad]},
        )
    return text
