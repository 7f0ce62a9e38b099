"""verify_audit_log and audit_checkpoint: tampering that bypasses the database's guard is caught."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from cdp.audit.chain import GENESIS, link_hash
from cdp.audit.models import AuditEntry
from cdp.audit.selectors import audit_chain_verify
from cdp.audit.services import SYSTEM, audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_entries() -> list[AuditEntry]:
    return [
        audit_record(actor="user:1", action=f"customer.step{n}", object_id=str(n))
        for n in range(1, 6)
    ]


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_verify_reports_an_intact_log_as_ok(five_entries) -> None:
    out, _ = run("verify_audit_log")

    assert out == "5 entries checked; audit log OK\n"


def test_verify_reports_an_empty_log_as_ok() -> None:
    out, _ = run("verify_audit_log")

    assert out == "0 entries checked; audit log OK\n"


def test_verify_names_an_entry_edited_with_triggers_disabled(five_entries, tamper) -> None:
    # Given a superuser who disables the guard and rewrites entry 3's actor
    tamper("UPDATE audit_auditentry SET actor = 'user:2' WHERE seq = 3")

    # When the log is verified, then the command fails naming that entry
    with pytest.raises(CommandError) as excinfo:
        run("verify_audit_log")

    message = str(excinfo.value)
    assert message.startswith("audit log BROKEN at seq 3 (action customer.step3, at ")
    assert "hash mismatch" in message
    assert message.endswith("2 entries verified before it.")
    assert excinfo.value.returncode == 1


def test_verify_names_the_entry_after_a_deleted_middle_row(five_entries, tamper) -> None:
    tamper("DELETE FROM audit_auditentry WHERE seq = 3")

    with pytest.raises(CommandError) as excinfo:
        run("verify_audit_log")

    message = str(excinfo.value)
    assert message.startswith("audit log BROKEN at seq 4 (action customer.step4, at ")
    assert "sequence gap; expected 3, found 4" in message


def test_verify_catches_a_deleted_and_renumbered_row(five_entries, tamper) -> None:
    # Given a deleted row whose successors were renumbered to hide the gap
    tamper("DELETE FROM audit_auditentry WHERE seq = 3")
    tamper("UPDATE audit_auditentry SET seq = seq - 1 WHERE seq > 3")

    with pytest.raises(CommandError, match=r"BROKEN at seq 3 .*previous-hash link broken"):
        run("verify_audit_log")


def test_verify_catches_a_chain_recomputed_with_another_key(five_entries, tamper) -> None:
    # Given an attacker who rewrites entry 2 and recomputes every link, without CDP_AUDIT_KEY
    forged_key = b"\x42" * 32
    tamper("UPDATE audit_auditentry SET object_id = 'other' WHERE seq = 2")
    prev = GENESIS
    for entry in AuditEntry.objects.order_by("seq"):
        digest = link_hash(forged_key, prev, entry.chain_payload())
        tamper(
            "UPDATE audit_auditentry SET prev_hash = %s, hash = %s WHERE seq = %s",
            [prev, digest, entry.seq],
        )
        prev = digest
    assert audit_chain_verify(key=forged_key).ok is True  # the forgery is internally consistent

    # Then only the key gives it away, at the very first entry
    with pytest.raises(CommandError, match=r"BROKEN at seq 1 \(action customer\.step1.*hash mis"):
        run("verify_audit_log")


def test_verify_shows_progress_on_stderr_every_100000_entries(monkeypatch) -> None:
    # Given a progress interval scaled down, so the test need not write 100,000 rows
    import cdp.audit.chain as chain

    original = chain.verify_chain

    def every_two(*args, **kwargs):
        return original(*args, **{**kwargs, "progress_every": 2})

    monkeypatch.setattr("cdp.audit.selectors.verify_chain", every_two)
    for n in range(5):
        audit_record(actor=SYSTEM, action=f"bulk.{n}")

    out, err = run("verify_audit_log")

    assert err == "verified 2 entries...\nverified 4 entries...\n"
    assert out == "5 entries checked; audit log OK\n"


def test_audit_checkpoint_prints_the_signed_head(five_entries) -> None:
    out, _ = run("audit_checkpoint")

    checkpoint = json.loads(out)
    head = AuditEntry.objects.get(seq=5)
    assert set(checkpoint) == {"seq", "hash", "at", "signature"}
    assert checkpoint["seq"] == 5
    assert checkpoint["hash"] == bytes(head.hash).hex()
    assert checkpoint["at"] == head.at.isoformat()
    assert len(bytes.fromhex(checkpoint["signature"])) == 32


@pytest.fixture
def checkpoint_file(five_entries, tmp_path: Path) -> Path:
    out, _ = run("audit_checkpoint")
    path = tmp_path / "checkpoint.json"
    path.write_text(out)
    return path


def test_verify_with_a_checkpoint_accepts_a_log_that_grew_since(checkpoint_file) -> None:
    audit_record(actor=SYSTEM, action="customer.later")

    out, _ = run("verify_audit_log", "--checkpoint", str(checkpoint_file))

    assert out == "checkpoint at seq 5 matches\n6 entries checked; audit log OK\n"


def test_verify_with_a_checkpoint_catches_a_truncated_tail(checkpoint_file, tamper) -> None:
    # Given the last two entries deleted: the remaining chain is still internally valid
    tamper("DELETE FROM audit_auditentry WHERE seq >= 4")
    assert run("verify_audit_log")[0] == "3 entries checked; audit log OK\n"

    with pytest.raises(CommandError, match="entry seq 5 named by the checkpoint is missing"):
        run("verify_audit_log", "--checkpoint", str(checkpoint_file))


def test_verify_with_a_checkpoint_catches_a_rewritten_tail(checkpoint_file, tamper) -> None:
    # Given the tail cut at entry 3 and re-appended through the service, with the real key:
    # a chain that verifies on its own
    tamper("DELETE FROM audit_auditentry WHERE seq >= 4")
    audit_record(actor=SYSTEM, action="customer.step4")
    audit_record(actor=SYSTEM, action="customer.step5")
    assert run("verify_audit_log")[0] == "5 entries checked; audit log OK\n"

    with pytest.raises(CommandError) as excinfo:
        run("verify_audit_log", "--checkpoint", str(checkpoint_file))

    assert str(excinfo.value) == (
        "audit log does not match checkpoint: entry seq 5 no longer has the checkpoint's hash"
    )


def test_verify_refuses_a_checkpoint_with_a_forged_signature(checkpoint_file) -> None:
    checkpoint = json.loads(checkpoint_file.read_text())
    checkpoint["seq"] = 4
    checkpoint["hash"] = bytes(AuditEntry.objects.get(seq=4).hash).hex()
    checkpoint_file.write_text(json.dumps(checkpoint))

    with pytest.raises(CommandError, match="checkpoint signature is invalid"):
        run("verify_audit_log", "--checkpoint", str(checkpoint_file))


def test_verify_refuses_an_unreadable_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("not json")

    with pytest.raises(CommandError, match="cannot read checkpoint"):
        run("verify_audit_log", "--checkpoint", str(path))


def test_a_checkpoint_of_an_empty_log_verifies(tmp_path: Path) -> None:
    out, _ = run("audit_checkpoint")
    path = tmp_path / "empty.json"
    path.write_text(out)

    assert json.loads(out)["seq"] == 0
    assert run("verify_audit_log", "--checkpoint", str(path))[0] == (
        "checkpoint at seq 0 matches\n0 entries checked; audit log OK\n"
    )
