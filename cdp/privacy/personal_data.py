"""Personal data held by the privacy package, and the erasure policies it declares for tables
that keep a subject's id or blind indexes by design (Art. 17(3) exceptions)."""

from cdp.crypto.registry import Category, ErasureAction, erasure_policy, register

register(
    "privacy.DataSubjectRequest",
    "extension_reason",
    category=Category.FREE_TEXT,
    description="Why the deadline was extended, as told to the subject",
)
register("privacy.DataSubjectRequest", "rejection_basis", category=Category.FREE_TEXT)
register("privacy.DataSubjectRequest", "changes", category=Category.FREE_TEXT)
register("privacy.DataSubjectRequest", "subject_index", category=Category.BLIND_INDEX)
register("privacy.Verification", "evidence_note", category=Category.FREE_TEXT)
register(
    "privacy.ExportPackage",
    "content",
    category=Category.FREE_TEXT,
    description="The access package (every field of the subject), encrypted",
)

_REQUEST_RECORDS = (
    "Records of data-subject requests are kept 24 months (11 CCR 7101) and to demonstrate "
    "compliance (GDPR Art. 5(2)); they hold the pseudonymous customer id and a blind index only"
)
erasure_policy(
    "privacy.DataSubjectRequest",
    ErasureAction.RETAIN,
    reason=_REQUEST_RECORDS,
    basis="GDPR Art. 17(3)(b); 11 CCR 7101",
)
erasure_policy(
    "privacy.ErasureJournal",
    ErasureAction.RETAIN,
    reason="Ids and blind indexes needed to re-apply the erasure after a backup is restored",
    basis="GDPR Art. 17(1) (makes the erasure effective on backups)",
)
erasure_policy(
    "privacy.Regulation",
    ErasureAction.RETAIN,
    reason=_REQUEST_RECORDS,
    basis="GDPR Art. 17(3)(b); 11 CCR 7101",
)
erasure_policy(
    "ingest.Suppression",
    ErasureAction.RETAIN,
    reason="Blind indexes of the erased identifiers, so later events and imports are dropped",
    basis="GDPR Art. 17(1), Art. 21(3) (honouring the erasure)",
)
erasure_policy(
    "consent.ConsentEvent",
    ErasureAction.RETAIN,
    reason="The append-only consent ledger proves each consent (pseudonymous id, keyed hashes)",
    basis="GDPR Art. 7(1), Art. 17(3)(b) and (e)",
)
erasure_policy(
    "audit.AuditEntry",
    ErasureAction.RETAIN,
    reason="The append-only audit log records who did what (object ids, never personal data)",
    basis="GDPR Art. 5(2), Art. 17(3)(b) and (e)",
)
