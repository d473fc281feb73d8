"""The app shell of Cloud Supermarket, and its catalog, level policies and credits."""
