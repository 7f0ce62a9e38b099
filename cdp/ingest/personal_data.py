from cdp.crypto.registry import Category, register

register(
    "ingest.Event",
    "payload",
    category=Category.BEHAVIOURAL,
    description="The whole original tracking message: traits, properties, context, IP address.",
)
register("ingest.Suppression", "value_index", category=Category.BLIND_INDEX)
