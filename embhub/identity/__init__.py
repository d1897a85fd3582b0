"""Identity layers: turning the ids users have into the canonical keys stores are keyed by."""
