"""Concurrent writers queue on the ledger's advisory lock instead of forking the chain."""

import threading

from django.db import connection

from cdp.profiles.models import Customer
from consent.ledger import ledger_verify
from consent.models import Channel, ConsentEvent, ConsentState
from consent.services import consent_record

WRITERS = 2
ENTRIES_EACH = 30


def test_two_concurrent_writers_leave_one_unbroken_chain(ledger_emptied_after, make_purpose):
    # Given a purpose and one customer per writer, committed
    make_purpose("t_concurrent")
    customers = Customer.objects.bulk_create([Customer() for _ in range(WRITERS)])
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(customer):
        try:
            start.wait()
            for n in range(ENTRIES_EACH):
                consent_record(
                    customer=customer,
                    purpose_code="t_concurrent",
                    granted=n % 2 == 0,
                    channel=Channel.API,
                    method="thread",
                    actor="system",
                )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    # When both write at once, each on its own connection, committing each decision
    threads = [threading.Thread(target=write, args=(c,)) for c in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then there is one chain of 60 consecutive entries holding every decision of both
    assert errors == []
    report = ledger_verify()
    assert (report.ok, report.checked, report.head_seq) == (True, 60, 60)
    seqs = list(ConsentEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 61))
    for customer in customers:
        assert ConsentEvent.objects.filter(customer_id=customer.id).count() == ENTRIES_EACH
        # the last decision (n = 29, a withdrawal) is the state
        assert ConsentState.objects.get(customer=customer).granted is False
