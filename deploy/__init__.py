"""How Beacon's pieces start: locally (deploy/local) and, later, per region."""
