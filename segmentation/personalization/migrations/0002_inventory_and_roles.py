from django.db import migrations

from cdp.profiles.roles import sync_role_groups

FEATURES = [
    "days since the last order",
    "number of orders",
    "total order value",
    "average order value",
    "days since the first order",
    "orders in the last 30 and 90 days",
    "order value in the last 90 days",
    "average days between orders",
]

INVENTORY = [
    {
        "kind": "churn",
        "name": "Churn risk",
        "purpose": "Find customers likely to stop buying, to offer them a reason to come back.",
        "consent_purpose": "profiling",
        "inputs": FEATURES,
        "output": "Probability (0-1) of no order in the next 90 days",
        "logic": (
            "Gradient-boosted trees learned from how past customers with a similar order history "
            "behaved in the following 90 days."
        ),
        "significant_effect": "No: used for marketing offers only; no legal or similar effect.",
    },
    {
        "kind": "propensity",
        "name": "Purchase propensity",
        "purpose": "Find customers likely to buy soon, to time recommendations and messages.",
        "consent_purpose": "profiling",
        "inputs": FEATURES,
        "output": "Probability (0-1) of an order in the next 30 days",
        "logic": (
            "Gradient-boosted trees learned from how past customers with a similar order history "
            "behaved in the following 30 days."
        ),
        "significant_effect": "No: used for marketing offers only; no legal or similar effect.",
    },
    {
        "kind": "expected_spend",
        "name": "Expected spend",
        "purpose": "Estimate the value of a customer's next 90 days, to size offers.",
        "consent_purpose": "profiling",
        "inputs": FEATURES,
        "output": "Expected order value in the next 90 days (currency units)",
        "logic": "Gradient-boosted trees (Poisson loss) on the order history.",
        "significant_effect": "No: used for marketing offers only; no legal or similar effect.",
    },
    {
        "kind": "recommendations",
        "name": "Product recommendations",
        "purpose": "Suggest products a customer may like, on the website and in messages.",
        "consent_purpose": "personalization",
        "inputs": ["products purchased", "products added to the cart", "products viewed"],
        "output": "Up to 10 product ids, best first",
        "logic": (
            "Products often bought or viewed together with the customer's own products; the most "
            "popular products when there is no history."
        ),
        "significant_effect": "No.",
    },
]


def seed_inventory(apps, schema_editor):
    ModelInventory = apps.get_model("personalization", "ModelInventory")
    for entry in INVENTORY:
        ModelInventory.objects.update_or_create(kind=entry["kind"], defaults=entry)


class Migration(migrations.Migration):
    dependencies = [("personalization", "0001_initial")]

    operations = [
        migrations.RunPython(seed_inventory, migrations.RunPython.noop),
        migrations.RunPython(sync_role_groups, migrations.RunPython.noop),
    ]
