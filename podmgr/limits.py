# SPDX-License-Identifier: LGPL-2.1-or-later
"""What systemd 252 takes in a unit file: characters, paths, ids and numbers.

Each limit is the one systemd's own parser applies to the settings podmgr writes (the
function named beside it, in systemd's src/basic/); a value past one would make the unit
fail to load, or be ignored with only a warning in the journal.  values.py checks manifest
and image values against these, and unitfile.py refuses what no unit can carry.
"""

from __future__ import annotations

import re

# Characters that end or break a line somewhere: all of C0 (systemd ends a unit file's line at
# \n, \r and NUL), DEL, C1 (U+0085 is a line break to Unicode) and the Unicode line and
# paragraph separators.  No value reaches a unit file with one unescaped (unitfile.py).
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# What systemd 252 takes (src/basic/path-util.c path_is_valid(), linux/limits.h): a path of
# fewer than PATH_MAX bytes, each component at most NAME_MAX bytes.
PATH_MAX = 4096
NAME_MAX = 255

# uid_t and gid_t are 32 bits; systemd's uid_is_valid() refuses (uid_t)-1 and the 16-bit -1.
ID_MAX = 2**32 - 2
INVALID_IDS = frozenset({65535, 2**32 - 1})
ID_HINT = "use 0..4294967294 except 65535, which systemd refuses"


def is_valid_id(number: int) -> bool:
    """A uid or gid systemd takes in User= and Group= (uid_is_valid())."""
    return 0 <= number <= ID_MAX and number not in INVALID_IDS


# Code points systemd's utf8_is_valid() refuses although they encode (unichar_is_valid()):
# U+FDD0..U+FDEF and the last two of each plane.  A unit with one fails to load.
_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
)
NONCHARACTERS = re.compile(f"[{_NONCHARACTERS}]")
# What no unit file can carry even escaped: NUL (no escape writes one), a lone surrogate (not
# UTF-8; JSON may decode one) and the noncharacters.  One pattern, so a value is read once.
NOT_TEXT = re.compile(f"[\0\ud800-\udfff{_NONCHARACTERS}]")
TEXT_HINT = "a NUL, a lone surrogate and noncharacters such as U+FFFE cannot be in a unit"


def is_text(raw: str) -> bool:
    """Text a unit file can carry, escaped: no NUL (no escape writes one), nothing that is
    not UTF-8 (a lone surrogate, as JSON may decode) and nothing systemd's UTF-8 check
    refuses (noncharacters)."""
    if raw.isascii():  # the common case: of NOT_TEXT, only NUL is ASCII
        return "\0" not in raw
    return NOT_TEXT.search(raw) is None


# systemd's parse_size() counts in 64 bits, and MemoryMax= and MemoryHigh= refuse UINT64_MAX
# (it means "infinity"), ignoring such a setting with only a warning.
SIZE_MAX = 2**64 - 2

# systemd's parse_time() reads each number with strtoll() and refuses a total of USEC_INFINITY
# or more; below 2**63 microseconds (292,000 years) format_duration() writes any value in a
# form it takes.  Beyond, TimeoutStopSec= would be ignored with only a warning.
DURATION_MAX = 2**63 - 1

# systemd's parse_permyriad_unbounded() holds a percentage times 100 in an int: CPUQuota=
# above this is ignored with only a warning.
PERCENT_MAX = (2**31 - 1) // 100
