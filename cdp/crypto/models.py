from django.db import models


class SubjectKey(models.Model):
    """One data key per data subject, stored only wrapped by a key-encryption key.

    Deleting the row is crypto-shredding: every value encrypted under it, including copies in
    backups and exports, becomes unreadable.
    """

    subject_id = models.UUIDField(primary_key=True)
    # Random 32-bit id written into every ciphertext's header: a value sealed under a destroyed
    # key stays unreadable even if the subject later gets a new key.
    key_id = models.PositiveBigIntegerField()
    # Not indexed: it holds one to three distinct values, `rotate_keys` reads the keys not under
    # the primary KEK (`<>`, a scan either way), and every new customer paid for two indexes
    # (the btree and its LIKE twin).
    kek_id = models.CharField(max_length=32)
    wrapped_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "subject data key"

    def __str__(self) -> str:
        return f"data key of {self.subject_id} (KEK {self.kek_id})"
