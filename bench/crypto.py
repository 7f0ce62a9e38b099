"""Field-level encryption against raw AES-256-GCM from `cryptography`, same values, same run.

Project: `EncryptedTextField.pre_save` (what Model.save() calls) and the attribute descriptor
that decrypts on access, with every data key already in the in-process cache.
Raw: `AESGCM.encrypt/decrypt` with a fresh nonce and the same associated-data length.
Target: the field layer reaches at least 40% of the raw rate (ratio >= 0.40).
"""

from __future__ import annotations

import os
import uuid

from _common import best_rates, report, scaled, setup_django

os.environ.setdefault("CDP_DEK_CACHE_SIZE", "100000")
os.environ.setdefault("CDP_DEK_CACHE_SECONDS", "3600")
setup_django()

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from django.db import transaction  # noqa: E402

from cdp.crypto import aead  # noqa: E402
from cdp.crypto.fields import Sealed  # noqa: E402
from cdp.crypto.subject_keys import subject_key_get_or_create  # noqa: E402
from cdp.profiles.models import Customer  # noqa: E402

VALUES = scaled(200_000)
SUBJECTS = min(scaled(10_000), VALUES)


def main() -> None:
    field = Customer._meta.get_field("email")
    customers = [Customer(id=uuid.uuid4()) for _ in range(SUBJECTS)]
    values = [f"customer.{i:07d}@example-{i % 97}.com" for i in range(VALUES)]
    owners = [customers[i % SUBJECTS] for i in range(VALUES)]

    with transaction.atomic():
        keys = {c.id: subject_key_get_or_create(c.id) for c in customers}
        transaction.set_rollback(True)  # the benchmark leaves nothing behind

    # Raw baseline: one AESGCM object per subject, associated data of the same shape.
    raw_ciphers = {c.id: AESGCM(os.urandom(32)) for c in customers}
    where = aead.location("profiles_customer", "email")
    aads = {
        c.id: aead.associated_data(b"\x01\x00\x00\x00\x01", where, c.id.bytes, c.id.bytes)
        for c in customers
    }
    plaintexts = [v.encode() for v in values]

    sealed: list[Sealed | None] = []

    def project_encrypt() -> int:
        sealed.clear()
        for customer, value in zip(owners, values, strict=True):
            customer.__dict__["email"] = value
            sealed.append(field.pre_save(customer, add=True))
        return VALUES

    raw_sealed: list[bytes] = []

    def raw_encrypt() -> int:
        raw_sealed.clear()
        for customer, data in zip(owners, plaintexts, strict=True):
            nonce = os.urandom(12)
            raw_sealed.append(
                nonce + raw_ciphers[customer.id].encrypt(nonce, data, aads[customer.id])
            )
        return VALUES

    def project_decrypt() -> int:
        for customer, blob in zip(owners, sealed, strict=True):
            customer.__dict__["email"] = blob
            customer.email  # noqa: B018  (the descriptor decrypts)
        return VALUES

    def raw_decrypt() -> int:
        for customer, blob in zip(owners, raw_sealed, strict=True):
            raw_ciphers[customer.id].decrypt(blob[:12], blob[12:], aads[customer.id])
        return VALUES

    assert keys
    encrypt_project, encrypt_raw = best_rates(project_encrypt, raw_encrypt)
    decrypt_project, decrypt_raw = best_rates(project_decrypt, raw_decrypt)
    print(
        f"# {VALUES:,} values over {SUBJECTS:,} subjects, data keys cached, best of 5, alternating"
    )
    report("crypto-encrypt", "values", encrypt_project, encrypt_raw)
    report("crypto-decrypt", "values", decrypt_project, decrypt_raw)


if __name__ == "__main__":
    main()
