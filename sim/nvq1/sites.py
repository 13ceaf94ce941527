"""The saturation/clamp counter sites of fpga/SPEC.md §2.2: the one list every kernel uses.

Every nvq1 result carries `counters` keyed by these names. The reference, fast, C and
TensorFlow kernels and the RTL all take the list (and its order, where counters travel as an
array) from here; the C kernel's slot enum is generated from it, never written by hand.
"""

SITES: tuple[str, ...] = (
    "s", "h", "R", "G", "G_slope", "T", "D", "z", "x", "tanh_slope", "g", "gT", "gT18", "gR", "gG",
    "gs", "gh", "gu", "pair_force", "force",
    "close_contact",  # §5.2: pairs clamped at the table floor (a clamp, not a clip)
    "g_range",        # §5.4: s̃ clamped into the G table's range
)
SITE_INDEX: dict[str, int] = {name: k for k, name in enumerate(SITES)}
