from cdp.crypto.registry import Category, register

register(
    "consent.ConsentReason",
    "text",
    category=Category.FREE_TEXT,
    description="Reason staff gave for a consent decision on the customer's behalf",
)
