"""Server-side stores: the only modules that speak SQL (by ORM) or Redis."""
