"""Everything in a policy build that touches files: reading the policy and its lists, hashing,
the index cache, last good copies, the compile child and the snapshot file it writes."""
