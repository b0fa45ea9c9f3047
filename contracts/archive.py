"""Contracts for a bounded `GoalResult`: past a size, a goal's full steps, plans and audit go to the
content store in parts (the `archive_content` activity), and the result keeps a compact view plus the
references; `starter.py result` reassembles the whole. (`ArchivePart`, what a part holds, is in
`contracts.goal` beside the models it carries.)"""

from pydantic import BaseModel, Field

ARCHIVE_CONTENT_ACTIVITY = "archive_content"  # ContentText -> ContentRef
LOAD_CONTENT_ACTIVITY = "load_content"  # ContentRef -> ContentText (checked against the reference's hash)


class ContentText(BaseModel):
    """Input of `archive_content`: one part of a goal's archive, as JSON text."""

    text: str


class ContentRef(BaseModel):
    """Output of `archive_content`: where the part is and what it is."""

    ref: str
    sha256: str
    size_bytes: int


class ResultArchive(BaseModel):
    """Set on a `GoalResult` that was too large to carry whole: the parts to reassemble it from."""

    parts: list[ContentRef]
    steps_total: int
    steps_shown: int = Field(description="How many steps the compact result still lists (failures and the output step first).")
