"""Everything that touches the world: model calls, tools, planning and verification, as activities."""
