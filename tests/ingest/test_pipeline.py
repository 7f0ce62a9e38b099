"""The pipeline's decisions: duplicates, suppression, consent, identity resolution, merge
protection and unmerge."""

from __future__ import annotations

import pytest

from cdp.ingest.models import Event, Suppression
from cdp.profiles.models import Customer, CustomerStatus, Identity, Merge
from cdp.profiles.resolution import customer_unmerge
from cdp.profiles.services import identifier_index
from consent.models import ConsentEvent, ConsentState
from tests.ingest.conftest import message

pytestmark = pytest.mark.django_db


def owner(kind, value):
    return Identity.objects.get(kind=kind, value_index=identifier_index(kind, value)[1]).customer


def test_replayed_batch_counts_duplicates_and_changes_nothing(post):
    batch = {"batch": [message(userId="u1"), message(userId="u1")]}
    post("batch", batch)
    customers = Customer.objects.count()

    again = post("batch", batch).json()

    assert (again["accepted"], again["duplicate"]) == (0, 2)
    assert Event.objects.count() == 2
    assert Customer.objects.count() == customers


def test_a_replay_with_changed_content_changes_nothing(post):
    """A batch goes in optimistically (no message locks, no duplicate check) and a stored
    message id aborts it: what the aborted attempt wrote (traits, consent) is rolled back and
    the checked attempt counts the message as a duplicate. A client replaying a message id with
    other content must not rewrite the profile or the consent ledger."""
    identify = message("identify", userId="replayer", traits={"plan": "basic"})
    assert post("batch", {"batch": [identify]}).json()["accepted"] == 1
    customer = owner("user_id", "replayer")
    ledger = ConsentEvent.objects.count()
    replay = {
        **identify,
        "traits": {"plan": "gold"},
        "context": {"consent": {"categoryPreferences": {"analytics": True, "advertising": True}}},
    }
    fresh = message(userId="replayer")

    body = post("batch", {"batch": [fresh, replay]}).json()

    assert (body["accepted"], body["duplicate"]) == (1, 1)
    customer.refresh_from_db()
    assert customer.attributes.get("plan") == "basic"
    assert ConsentEvent.objects.count() == ledger
    assert Event.objects.filter(customer=customer).count() == 2


def test_same_message_id_twice_in_one_batch_is_one_event_and_one_duplicate(post):
    msg = message()

    body = post("batch", {"batch": [msg, msg]}).json()

    assert (body["accepted"], body["duplicate"]) == (1, 1)


def test_events_of_a_suppressed_identifier_are_dropped_and_counted(post):
    Suppression.objects.create(kind="user_id", value_index=identifier_index("user_id", "gone")[1])

    body = post("batch", {"batch": [message(userId="gone"), message(userId="here")]}).json()

    assert (body["accepted"], body["suppressed"]) == (1, 1)
    assert not Identity.objects.filter(value_index=identifier_index("user_id", "gone")[1])


def test_without_analytics_consent_events_are_suppressed_but_consent_is_recorded(post):
    msg = message(userId="u2", context={"consent": {"categoryPreferences": {"analytics": False}}})

    body = post("batch", {"batch": [msg]}).json()

    assert (body["accepted"], body["suppressed"]) == (0, 1)
    customer = owner("user_id", "u2")
    state = ConsentState.objects.get(customer=customer, purpose_id="analytics")
    assert state.granted is False
    assert ConsentEvent.objects.get(customer_id=customer.id).method == "category_preferences"


def test_repeated_preferences_record_consent_once(post):
    post("batch", {"batch": [message(userId="u3") for _ in range(3)]})
    post("batch", {"batch": [message(userId="u3")]})

    assert ConsentEvent.objects.filter(purpose_code="analytics").count() == 1


def test_sec_gpc_opts_the_customer_out_of_sale_and_sharing(post):
    post("batch", {"batch": [message(userId="u4")]}, headers={"Sec-GPC": "1"})

    customer = owner("user_id", "u4")
    assert ConsentState.objects.get(customer=customer, purpose_id="sale_sharing").granted is False


def test_identify_links_anonymous_history_to_the_user(post):
    post("batch", {"batch": [message(anonymousId="a5")]})
    anonymous = owner("anonymous_id", "a5")

    post(
        "batch",
        {
            "batch": [
                message(
                    "identify", userId="u5", anonymousId="a5", traits={"email": "five@shop.example"}
                )
            ]
        },
    )

    assert owner("user_id", "u5") == anonymous
    assert owner("email", "five@shop.example") == anonymous
    assert Event.objects.filter(customer=anonymous).count() == 2


def test_two_profiles_with_different_user_ids_are_not_merged_by_a_shared_email(post):
    post("batch", {"batch": [message("identify", userId="u6", traits={"email": "s@shop.example"})]})

    post("batch", {"batch": [message("identify", userId="u7", traits={"email": "s@shop.example"})]})

    assert owner("user_id", "u6") != owner("user_id", "u7")
    assert owner("email", "s@shop.example") == owner("user_id", "u6")
    assert Merge.objects.count() == 0


def test_blocked_identifier_values_never_link_profiles(post):
    post("batch", {"batch": [message("identify", userId="u8", traits={"email": "test@test.com"})]})
    post("batch", {"batch": [message("identify", userId="u9", traits={"email": "test@test.com"})]})

    assert not Identity.objects.filter(kind="email").exists()
    assert owner("user_id", "u8") != owner("user_id", "u9")


def test_alias_merges_profiles_and_unmerge_restores_both(post):
    post(
        "batch",
        {
            "batch": [
                message(
                    "identify", userId="old", traits={"plan": "basic", "email": "o@shop.example"}
                )
            ]
        },
    )
    post("batch", {"batch": [message("identify", userId="new", traits={"plan": "gold"})]})
    loser, survivor = owner("user_id", "old"), owner("user_id", "new")

    body = post("batch", {"batch": [message("alias", userId="new", previousId="old")]}).json()

    assert body["accepted"] == 1
    merge = Merge.objects.get()
    assert (merge.from_customer_id, merge.into_customer_id, merge.rule) == (
        loser.id,
        survivor.id,
        "alias",
    )
    assert owner("user_id", "old") == survivor
    survivor.refresh_from_db()
    assert survivor.attributes == {"plan": "gold"}  # the survivor's own value wins
    assert survivor.email == "o@shop.example"  # a gap filled from the merged profile
    assert Customer.objects.get(pk=loser.pk).status == CustomerStatus.MERGED

    customer_unmerge(merge=merge, actor="user:1")

    assert owner("user_id", "old") == loser
    assert owner("email", "o@shop.example") == loser
    restored = Customer.objects.get(pk=loser.pk)
    assert restored.status == CustomerStatus.ACTIVE and restored.merged_into_id is None
    survivor = Customer.objects.get(pk=survivor.pk)
    assert survivor.email is None
    identity = Identity.objects.get(
        kind="user_id", value_index=identifier_index("user_id", "old")[1]
    )
    assert identity.value == "old"  # re-encrypted under the restored profile's key, readable


def test_new_traits_are_classified(post):
    post(
        "batch",
        {
            "batch": [
                message(
                    "identify",
                    userId="u10",
                    traits={
                        "email": "ten@shop.example",
                        "plan": "pro",
                        "shoe_size": 44,
                        "address": {"country": "DE"},
                    },
                )
            ]
        },
    )

    customer = owner("user_id", "u10")
    assert customer.attributes == {"plan": "pro"}
    assert customer.traits == {"shoe_size": 44}
    assert (customer.country, customer.jurisdiction) == ("DE", "gdpr")


def test_a_repeated_identify_writes_nothing_and_a_changed_trait_updates_only_its_profile(post):
    traits = {
        "email": "Eleven@Shop.example",
        "phone": "+44 20 7946 0011",
        "firstName": "Ada",
        "plan": "pro",
        "shoe_size": 44,
        "address": {"city": "London", "country": "GB"},
    }
    post("identify", message("identify", userId="u11", traits=traits))
    post("identify", message("identify", userId="u12", traits={"email": "twelve@shop.example"}))
    first = owner("user_id", "u11")
    other = owner("user_id", "u12")

    # The same traits again (the e-mail spelled as sent: it compares by blind index).
    post("identify", message("identify", userId="u11", traits=traits))
    assert Customer.objects.get(pk=first.pk).updated_at == first.updated_at

    for changed in (
        {"firstName": "Ada L."},
        {"plan": "team"},
        {"shoe_size": 45},
        {"address": {"city": "Paris", "country": "FR"}},
        {"email": "eleven@new.example"},
        {"phone": "+44 20 7946 0012"},
    ):
        traits = {**traits, **changed}
        post("identify", message("identify", userId="u11", traits=traits))

    customer = Customer.objects.get(pk=first.pk)
    assert customer.updated_at > first.updated_at
    assert (customer.first_name, customer.email, customer.phone) == (
        "Ada L.",
        "eleven@new.example",
        "+442079460012",
    )
    assert customer.email_index == identifier_index("email", "eleven@new.example")[1]
    assert customer.phone_index == identifier_index("phone", "+442079460012")[1]
    assert customer.attributes == {"plan": "team"}
    assert customer.traits == {"shoe_size": 45}
    assert customer.address == {"city": "Paris", "country": "FR"}
    assert (customer.country, customer.jurisdiction) == ("FR", "gdpr")
    assert Customer.objects.get(pk=other.pk).updated_at == other.updated_at


def test_unmerge_from_the_admin_needs_the_permission_and_restores_the_profile(client, post):
    from django.contrib.auth.models import Group, User

    from cdp.profiles.roles import ANALYST, COMPLIANCE_OFFICER

    post("batch", {"batch": [message("identify", userId="p1")]})
    post("batch", {"batch": [message("identify", userId="p2")]})
    post("batch", {"batch": [message("alias", userId="p2", previousId="p1")]})
    merge = Merge.objects.get()
    analyst = User.objects.create_user("analyst", password="x" * 16, is_staff=True)
    analyst.groups.add(Group.objects.get(name=ANALYST))
    officer = User.objects.create_user("officer", password="x" * 16, is_staff=True)
    officer.groups.add(Group.objects.get(name=COMPLIANCE_OFFICER))
    url = "/admin/profiles/merge/"
    data = {"action": "unmerge", "_selected_action": [str(merge.pk)]}

    client.force_login(analyst)
    assert client.post(url, data).status_code == 403
    client.force_login(officer)
    response = client.post(url, data)

    assert response.status_code == 302
    merge.refresh_from_db()
    assert merge.unmerged_at is not None and merge.unmerged_by == f"user:{officer.pk}"
    assert Customer.objects.get(pk=merge.from_customer_id).status == CustomerStatus.ACTIVE
    assert owner("user_id", "p1").id == merge.from_customer_id


def test_a_withdrawal_on_the_merged_profile_holds_after_the_merge(post):
    no = {"consent": {"categoryPreferences": {"analytics": True, "marketing": False}}}
    yes = {"consent": {"categoryPreferences": {"analytics": True, "marketing": True}}}
    post("batch", {"batch": [message("identify", userId="m1", context=no)]})
    post("batch", {"batch": [message("identify", userId="m2", context=yes)]})
    survivor = owner("user_id", "m2")

    post("batch", {"batch": [message("alias", userId="m2", previousId="m1", context={})]})

    state = ConsentState.objects.get(customer=survivor, purpose_id="marketing")
    assert (state.granted, state.method) == (False, "merge")
    assert ConsentState.objects.get(customer=survivor, purpose_id="analytics").granted is True


def test_garbage_collection_is_paused_during_a_request_and_catches_up_after(post, monkeypatch):
    """The tracking views defer cyclic collection while a batch is handled (a fifth of the
    CPU per event went to the collector re-traversing the batch) and resume it afterwards, so
    cycles made by a request are still collected."""
    import gc
    import weakref

    from cdp.ingest import pipeline

    seen = []
    original = pipeline.events_ingest

    class Cycle:
        pass

    def spying(**kwargs):
        seen.append(gc.isenabled())
        cycle = Cycle()
        cycle.me = cycle
        seen.append(weakref.ref(cycle))
        return original(**kwargs)

    monkeypatch.setattr("cdp.ingest.views.events_ingest", spying)
    assert gc.isenabled()
    assert post("batch", {"batch": [message(userId="gc-1")]}).json()["accepted"] == 1

    assert seen[0] is False
    assert gc.isenabled()
    gc.collect(0)
    assert seen[1]() is None


def test_each_stored_payload_has_its_own_nonce_and_decrypts_to_its_message(post):
    """The batch draws its payload nonces from one read of the system generator: every event
    still gets a distinct one, in the stored format the encrypted field reads."""
    from django.db import connection

    from cdp.crypto import aead

    batch = [message(userId=f"nonce-{n % 3}", properties={"n": n}) for n in range(40)]
    assert post("batch", {"batch": batch}).json()["accepted"] == 40

    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM ingest_event")
        blobs = [bytes(row[0]) for row in cursor.fetchall()]
    nonces = {blob[aead.HEADER_BYTES : aead.HEADER_BYTES + aead.NONCE_BYTES] for blob in blobs}
    assert len(blobs) == len(nonces) == 40
    stored = {e.message_id: e.payload for e in Event.objects.all()}
    assert all(stored[m["messageId"]] == m for m in batch)
