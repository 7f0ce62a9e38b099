from cdp.crypto.registry import Category, register

register("profiles.Customer", "email", category=Category.CONTACT)
register("profiles.Customer", "phone", category=Category.CONTACT)
register("profiles.Customer", "first_name", category=Category.IDENTITY)
register("profiles.Customer", "last_name", category=Category.IDENTITY)
register("profiles.Customer", "birth_date", category=Category.DEMOGRAPHIC, sensitive=False)
register("profiles.Customer", "address", category=Category.LOCATION)
register("profiles.Customer", "traits", category=Category.FREE_TEXT)
register("profiles.Customer", "email_index", category=Category.BLIND_INDEX)
register("profiles.Customer", "phone_index", category=Category.BLIND_INDEX)
register("profiles.Identity", "value", category=Category.IDENTITY)
register("profiles.Identity", "value_index", category=Category.BLIND_INDEX)
register("profiles.Merge", "before", category=Category.FREE_TEXT)
