"""Subject data of segments: no encrypted fields; memberships are profiling results.

SegmentMembership rows (customer FK, CASCADE) are deleted on erasure (the default). The export
label is declared when the registry offers it (the privacy package adds it).
"""

from cdp.crypto import registry

if hasattr(registry, "export_label"):
    registry.export_label(
        "segments.SegmentMembership",
        title="Segment memberships",
        explanation=(
            "You were placed in a segment when your profile and activity matched the segment's "
            "rule and your consent allowed the segment's purpose; each row is one stay."
        ),
        profiling=True,
    )
