"""Applications over the library: annotation sessions and whole collections."""
