"""Fan-out: split a run into shards (plan) and merge their records (merge)."""
